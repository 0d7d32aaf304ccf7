// Command benchresults manages the results of `make bench`: it starts a run
// file, finishes it into bench/out/results.json, prints the verdict of every
// goal in bench/goals.json (exiting 1 when one fails) and writes the summary
// table of docs/performance.md.
//
//	benchresults start RUN                   a new run file, stamped (commit, kernel, CPU)
//	benchresults finish RUN RESULTS          the run, finished, becomes RESULTS
//	benchresults verdict RESULTS             figure, goal, PASS/FAIL per goal; exit 1 on a FAIL
//	benchresults doc [-check] RESULTS DOC    rewrite (or, -check, compare) DOC's generated table
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nsint/nsint/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the exit status: 0, 1 when a goal failed or the doc table is
// stale, 2 on an error or bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	status, err := dispatch(args, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "benchresults: %v\n", err)
		return 2
	}
	return status
}

var errUsage = errors.New("usage: benchresults start RUN | finish RUN RESULTS | verdict RESULTS | doc [-check] RESULTS DOC")

func dispatch(args []string, stdout io.Writer) (int, error) {
	if len(args) == 0 {
		return 0, errUsage
	}
	switch cmd, rest := args[0], args[1:]; {
	case cmd == "start" && len(rest) == 1:
		r, err := bench.StartRun(rest[0])
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(stdout, "bench run started in %s: commit %s, kernel %s, %s\n", rest[0], r.Commit, r.Kernel, r.CPU)
		return 0, nil
	case cmd == "finish" && len(rest) == 2:
		if _, err := bench.FinishRun(rest[0], rest[1]); err != nil {
			return 0, err
		}
		fmt.Fprintf(stdout, "bench run written to %s\n", rest[1])
		return 0, nil
	case cmd == "verdict" && len(rest) == 1:
		r, err := bench.LoadResults(rest[0])
		if err != nil {
			return 0, err
		}
		goals, err := bench.Goals()
		if err != nil {
			return 0, err
		}
		checks := bench.Verdict(r, goals)
		if err := bench.WriteVerdict(stdout, r, checks); err != nil {
			return 0, err
		}
		if bench.Failed(checks) > 0 {
			return 1, nil
		}
		return 0, nil
	case cmd == "doc" && (len(rest) == 2 || len(rest) == 3 && rest[0] == "-check"):
		check := len(rest) == 3
		if check {
			rest = rest[1:]
		}
		return doc(rest[0], rest[1], check, stdout)
	}
	return 0, errUsage
}

// doc rewrites the generated table of docPath from resultsPath, or with
// check compares it and returns 1 when it differs.
func doc(resultsPath, docPath string, check bool, stdout io.Writer) (int, error) {
	want, err := bench.GeneratedDoc(resultsPath, docPath)
	if err != nil {
		return 0, err
	}
	have, err := os.ReadFile(docPath)
	if err != nil {
		return 0, err
	}
	if string(have) == want {
		return 0, nil
	}
	if check {
		fmt.Fprintf(stdout, "%s: the bench table differs from what %s gives; run make bench-doc\n", docPath, resultsPath)
		return 1, nil
	}
	if err := os.WriteFile(docPath, []byte(want), 0o644); err != nil {
		return 0, err
	}
	fmt.Fprintf(stdout, "%s: bench table rewritten from %s\n", docPath, resultsPath)
	return 0, nil
}
