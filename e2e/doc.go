// Package e2e holds nsint's end-to-end suites. The local suite (this
// directory, root) builds the real binaries, makes a node out of network
// namespaces (internal/fakenode), runs nsint-agent against a UDP receiver that
// decodes with pkg/intreport, sends real traffic and checks what comes out.
// It never touches the machine's own interfaces: the agent runs with
// --host-netns=false and a netns directory of the test's own.
package e2e
