package main

import "runtime/debug"

// moduleVersion reports the FerretDB module version this binary was built with.
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/FerretDB/FerretDB" {
				return "FerretDB " + d.Version
			}
		}
	}
	return "FerretDB (unknown)"
}
