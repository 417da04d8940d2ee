// Command compose-check loads docker-compose.yml with compose-go, the loader Docker Compose
// itself uses: the file is parsed, interpolated, merged (anchors, `<<`) and validated against
// the Compose specification's schema, as `docker compose config` does, without a Docker engine.
// It prints each service with its image, published ports and dependencies.
//
//	go run ./dev/compose-check [path/to/docker-compose.yml]
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// Load parses and validates the compose file at path, as Docker Compose would on a host
// without any of its variables set.
func Load(path string) (*types.Project, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithName("ecom"),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

func main() {
	path := "docker-compose.yml"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	p, err := Load(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
		os.Exit(1)
	}
	names := make([]string, 0, len(p.Services))
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := p.Services[n]
		ports := []string{}
		for _, pt := range s.Ports {
			ports = append(ports, fmt.Sprintf("%s:%s->%d", pt.HostIP, pt.Published, pt.Target))
		}
		deps := []string{}
		for d, c := range s.DependsOn {
			deps = append(deps, d+"("+c.Condition+")")
		}
		sort.Strings(deps)
		fmt.Printf("%-16s %-55s ports %v depends on %v\n", n, s.Image, ports, deps)
	}
	fmt.Printf("%s: valid (%d services, %d volumes)\n", path, len(p.Services), len(p.Volumes))
}
