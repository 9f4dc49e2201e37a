// argo-events-check runs Argo Events' own code on the project's example files: the resource
// event sources of docs/gitops/argo-events/eventsource.yaml (the real EventListener, with its
// informer and filters) against the cluster in KUBECONFIG, and for each event they dispatch, the
// Sensor's dependency filters from sensor.yaml (the real dependencies.Filter). Every dependency
// that passes is a trigger, printed as one JSON line on stdout. It stands in for the EventSource
// and Sensor pods (and the event bus between them) on a cluster that runs no pods. SIGTERM stops it.
//
//	argo-events-check --eventsource FILE --sensor FILE --namespace NS
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/argoproj/argo-events/pkg/apis/events/v1alpha1"
	eventsourcecommon "github.com/argoproj/argo-events/pkg/eventsources/common"
	"github.com/argoproj/argo-events/pkg/eventsources/sources/resource"
	"github.com/argoproj/argo-events/pkg/metrics"
	"github.com/argoproj/argo-events/pkg/sensors/dependencies"
	"github.com/tidwall/gjson"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// trigger is what one passing dependency prints.
type trigger struct {
	Dependency string `json:"dependency"`
	Object     string `json:"object"`
	Message    string `json:"message,omitempty"`
	Failed     string `json:"failed,omitempty"`
}

func load(path string, into interface{}) {
	text, err := os.ReadFile(path)
	if err != nil {
		fail("cannot read %s: %v", path, err)
	}
	if err := yaml.Unmarshal(text, into); err != nil {
		fail("%s is not valid: %v", path, err)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "argo-events-check: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	eventSourcePath := flag.String("eventsource", "", "the EventSource YAML")
	sensorPath := flag.String("sensor", "", "the Sensor YAML")
	namespace := flag.String("namespace", "", "namespace the resource event sources watch (replaces the files' own)")
	flag.Parse()
	var es v1alpha1.EventSource
	var sensor v1alpha1.Sensor
	load(*eventSourcePath, &es)
	load(*sensorPath, &sensor)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var out sync.Mutex
	for name, source := range es.Spec.Resource {
		if *namespace != "" {
			source.Namespace = *namespace
		}
		listener := &resource.EventListener{
			EventSourceName:     es.Name,
			EventName:           name,
			ResourceEventSource: source,
			Metrics:             metrics.NewMetrics(source.Namespace),
		}
		dispatch := func(data []byte, _ ...eventsourcecommon.Option) error {
			event := &v1alpha1.Event{
				Context: &v1alpha1.EventContext{
					ID: fmt.Sprint(time.Now().UnixNano()), Source: es.Name, Subject: name,
					Type: string(v1alpha1.ResourceEvent), SpecVersion: "1.0",
					DataContentType: "application/json", Time: metav1.Now(),
				},
				Data: data,
			}
			for _, dep := range sensor.Spec.Dependencies {
				if dep.EventSourceName != es.Name || dep.EventName != name {
					continue
				}
				pass, err := dependencies.Filter(event, dep.Filters, dep.FiltersLogicalOperator)
				if err != nil || !pass {
					continue
				}
				line, _ := json.Marshal(trigger{
					Dependency: dep.Name,
					Object:     gjson.GetBytes(data, "body.metadata.name").String(),
					Message:    gjson.GetBytes(data, "body.message").String(),
					Failed:     gjson.GetBytes(data, "body.status.counts.failed").Raw,
				})
				out.Lock()
				fmt.Println(string(line))
				out.Unlock()
			}
			return nil
		}
		go func() {
			if err := listener.StartListening(ctx, dispatch); err != nil {
				fail("event source %s stopped: %v", name, err)
			}
		}()
	}
	fmt.Fprintln(os.Stderr, "argo-events-check: listening")
	// StartListening blocks in its informer and never returns on its own: stop here, with
	// every printed trigger flushed (stdout is written line by line under the lock).
	<-ctx.Done()
	out.Lock()
	os.Exit(0)
}
