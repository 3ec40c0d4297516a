// The pod sandbox's placeholder process for the test bed's node: it holds the pod's
// namespaces open and exits on SIGTERM or SIGINT, as Kubernetes' own pause image does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
