// Command mkimage writes a single-layer container image as a docker-archive
// tarball (manifest.json, the image config, one uncompressed layer whose sha256
// is its diff_id), the format `ctr images import` reads. The local cluster
// (hack/local-cluster) builds its images with it, without Docker or a registry.
//
// It only packs files it is given; it never pulls, pushes or runs anything.
package main
