package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// progressInterval is how often a progress line is rewritten.
const progressInterval = 500 * time.Millisecond

// progress keeps one status line on a terminal, rewritten in place and cut
// to the terminal's width, so that it never wraps. Anywhere but a terminal
// it writes nothing.
type progress struct {
	mu    sync.Mutex
	w     io.Writer  // nil: not a terminal
	width func() int // the terminal's columns
	shown bool       // a line is on the screen
}

func newProgress(stderr io.Writer) *progress {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &progress{}
	}
	return &progress{w: f, width: func() int {
		w, _, err := term.GetSize(int(f.Fd()))
		if err != nil || w <= 0 {
			return 80
		}
		return w
	}}
}

// start shows status at once and then every progressInterval, until the
// returned stop is called; stop clears the line, so that what is written
// next starts on a line of its own.
func (p *progress) start(status func() string) (stop func()) {
	if p == nil || p.w == nil {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(progressInterval)
		defer tick.Stop()
		for {
			p.show(status())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(done)
		<-exited
		p.clear()
	}
}

// show replaces the line with s, cut to one column less than the terminal
// is wide.
func (p *progress) show(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := []rune(s); len(r) > p.width()-1 {
		s = string(r[:max(p.width()-1, 0)])
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", s)
	p.shown = true
}

// clear erases the line, if one is shown.
func (p *progress) clear() {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}

// on reports whether p shows a progress line: stderr is a terminal.
func (p *progress) on() bool {
	return p != nil && p.w != nil
}
