// Command pause is the sandbox ("pause") container of the test node's pods.
//
// A pod's sandbox holds its namespaces open while the pod's containers come and go. It must do
// nothing, exit promptly when the kubelet stops the pod (SIGTERM or SIGINT), and, as PID 1 of a
// pod that shares its process namespace, reap the orphans that are handed to it. No registry is
// reachable where kfaas's tests run, so the node's image is built from this file
// (tests/services/images.py, pause_image) instead of pulled.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("kfaas pause")
		return
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for received := range signals {
		if received == syscall.SIGCHLD {
			reap()
			continue
		}
		os.Exit(0)
	}
}

// reap waits for every child that has exited, without blocking on those still running.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
