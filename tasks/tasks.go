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

// Lookup returns the task a spec names: a task's name, then optionally a
// colon and the options it takes (task.Configurable), as in
// "countdown:apr,sub-call-budget=10".
func Lookup(spec string) (task.Task, error) {
	name, options, configured := strings.Cut(spec, ":")
	for _, t := range all {
		if t.Name() != name {
			continue
		}
		if !configured {
			return t, nil
		}
		c, ok := t.(task.Configurable)
		if !ok {
			return nil, fmt.Errorf("task %q takes no options", name)
		}
		ct, err := c.Configure(options)
		if err != nil {
			return nil, fmt.Errorf("task %q: %w", spec, err)
		}
		return ct, nil
	}
	return nil, fmt.Errorf("task %q: want %s", name, strings.Join(Names(), " or "))
}
