// Command kstatus prints, for each Kubernetes object in a JSON list read from standard input,
// the status that kstatus computes (sigs.k8s.io/cli-utils, the library Flux uses for health
// checks): "NAME STATUS MESSAGE" per line.
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: reading stdin:", err)
		os.Exit(2)
	}
	// The apimachinery decoder keeps integers as int64, as the API server sends them.
	list := &unstructured.UnstructuredList{}
	if err := list.UnmarshalJSON(data); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: reading a JSON list:", err)
		os.Exit(2)
	}
	for i := range list.Items {
		u := &list.Items[i]
		result, err := status.Compute(u)
		if err != nil {
			fmt.Printf("%s Error %v\n", u.GetName(), err)
			continue
		}
		fmt.Printf("%s %s %s\n", u.GetName(), result.Status, result.Message)
	}
}
