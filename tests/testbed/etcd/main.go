// The etcd server, built from its Go module: Debian's etcd (3.4) cannot report watch
// progress, so the API server refuses the streaming lists that current clients open.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
