// Command etcd is the etcd server at the version k8s.io/kubernetes itself is tested with, built
// from the same module graph as the control plane so one `go build` produces every binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
