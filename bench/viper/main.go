// viperbench: the spf13/viper contender of bench/suites/latency.mjs. Watches one config file with
// viper.WatchConfig and prints "<time.Now().UnixNano() at the callback> <value of key v>" per callback on
// stdout (unbuffered). Prints "ready" once watching. Exits when stdin closes.
// Build (Debian golang-go + golang-github-spf13-viper-dev, offline):
//   GOPATH=/usr/share/gocode GO111MODULE=off go build -o /tmp/viperbench ./bench/viper
package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spf13/viper"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: viperbench <config file>")
		os.Exit(2)
	}
	v := viper.New()
	v.SetConfigFile(os.Args[1])
	if err := v.ReadInConfig(); err != nil {
		fmt.Fprintln(os.Stderr, "read:", err)
		os.Exit(1)
	}
	v.OnConfigChange(func(e fsnotify.Event) {
		t := time.Now().UnixNano()
		fmt.Fprintf(os.Stdout, "%d %d\n", t, v.GetInt("v"))
	})
	v.WatchConfig()
	fmt.Fprintln(os.Stdout, "ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
}
