package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// entry is one path of the layer: a file copied from the host, a directory or
// a symbolic link.
type entry struct {
	name   string // path inside the image, without a leading slash
	source string // host file to copy (regular files)
	link   string // symlink target
	dir    bool
	mode   int64
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	out := fs.String("o", "", "output tarball")
	tag := fs.String("tag", "", "image name, e.g. nsint.local/agent:dev")
	var files, links, dirs, entrypoint, env listFlag
	fs.Var(&files, "file", "HOSTPATH:IMAGEPATH (repeatable; mode kept)")
	fs.Var(&links, "link", "IMAGEPATH:TARGET symbolic link (repeatable)")
	fs.Var(&dirs, "dir", "IMAGEPATH directory (repeatable; /tmp gets mode 1777)")
	fs.Var(&entrypoint, "entrypoint", "entrypoint argument (repeatable, in order)")
	fs.Var(&env, "env", "KEY=VALUE (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *tag == "" {
		return fmt.Errorf("-o and -tag are required")
	}
	var entries []entry
	for _, d := range dirs {
		mode := int64(0o755)
		if strings.Trim(d, "/") == "tmp" {
			mode = 0o1777
		}
		entries = append(entries, entry{name: strings.Trim(d, "/"), dir: true, mode: mode})
	}
	for _, f := range files {
		src, dst, ok := strings.Cut(f, ":")
		if !ok {
			return fmt.Errorf("-file %q: want HOSTPATH:IMAGEPATH", f)
		}
		fi, err := os.Stat(src)
		if err != nil {
			return err
		}
		entries = append(entries, entry{name: strings.Trim(dst, "/"), source: src, mode: int64(fi.Mode().Perm())})
	}
	for _, l := range links {
		name, target, ok := strings.Cut(l, ":")
		if !ok {
			return fmt.Errorf("-link %q: want IMAGEPATH:TARGET", l)
		}
		entries = append(entries, entry{name: strings.Trim(name, "/"), link: target, mode: 0o777})
	}
	entries = withParents(entries)

	layer, err := layerTar(entries)
	if err != nil {
		return err
	}
	layerSum := sha256.Sum256(layer)
	diffID := "sha256:" + hex.EncodeToString(layerSum[:])
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": []string(entrypoint), "Env": []string(env), "WorkingDir": "/"},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	if err != nil {
		return err
	}
	configSum := sha256.Sum256(config)
	configName := hex.EncodeToString(configSum[:]) + ".json"
	layerName := hex.EncodeToString(layerSum[:]) + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": []string{*tag}, "Layers": []string{layerName}}})
	if err != nil {
		return err
	}

	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, m := range []struct {
		name string
		data []byte
	}{{configName, config}, {layerName, layer}, {"manifest.json", manifest}} {
		if dir := path.Dir(m.name); dir != "." {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: m.name, Mode: 0o644, Size: int64(len(m.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(m.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// withParents adds the missing parent directories and sorts parents first.
func withParents(entries []entry) []entry {
	have := map[string]bool{}
	for _, e := range entries {
		have[e.name] = true
	}
	for _, e := range entries {
		for d := path.Dir(e.name); d != "." && d != "/"; d = path.Dir(d) {
			if !have[d] {
				have[d] = true
				entries = append(entries, entry{name: d, dir: true, mode: 0o755})
			}
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	return entries
}

func layerTar(entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Format: tar.FormatPAX}
		switch {
		case e.dir:
			h.Typeflag, h.Name = tar.TypeDir, e.name+"/"
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		default:
			data, err := os.ReadFile(e.source)
			if err != nil {
				return nil, err
			}
			h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			if _, err := io.Copy(tw, bytes.NewReader(data)); err != nil {
				return nil, err
			}
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
