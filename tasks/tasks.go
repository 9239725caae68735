// Package tasks names the tasks braid knows: the one place that imports
// each task's package, so that the commands, the server and evaluations
// take a task by its name and see only the task interfaces.
package tasks

import (
	"fmt"
	"strings"

	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
	taskmath "github.com/braid-dev/braid/task/math"
)

var all = []task.Task{countdown.Task{}, taskmath.Task{}}

// Names lists the tasks' names.
func Names() []string {
	names := make([]string, len(all))
	for i, t := range all {
		names[i] = t.Name()
	}
	return names
}

// Lookup returns the task with the name.
func Lookup(name string) (task.Task, error) {
	for _, t := range all {
		if t.Name() == name {
			return t, nil
		}
	}
	return nil, fmt.Errorf("task %q: want %s", name, strings.Join(Names(), " or "))
}
