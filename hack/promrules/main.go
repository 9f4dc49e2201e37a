// Command promrules checks Prometheus rule files the way `promtool check rules` does: it parses
// and validates them with the same library (rulefmt, PromQL parser) and prints the rules found.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: promrules FILE...")
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	failed := false
	for _, file := range os.Args[1:] {
		groups, errs := rulefmt.ParseFile(file, false, model.UTF8Validation, parser.NewParser(parser.Options{}), logger)
		if len(errs) > 0 {
			failed = true
			for _, err := range errs {
				fmt.Fprintln(os.Stderr, err)
			}
			continue
		}
		n := 0
		for _, g := range groups.Groups {
			n += len(g.Rules)
		}
		fmt.Printf("%s: SUCCESS: %d rules found\n", file, n)
	}
	if failed {
		os.Exit(1)
	}
}
