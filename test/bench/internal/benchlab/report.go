package benchlab

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// Table is one metric: a row per figure, a column per router.
type Table struct {
	Title   string
	Columns []string
	rows    [][]string // label first
}

// Add appends a row.
func (t *Table) Add(label string, cells ...string) {
	t.rows = append(t.rows, append([]string{label}, cells...))
}

// Print prints the title, then the rows in aligned columns.
func (t *Table) Print() {
	fmt.Println(t.Title)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(w, "\t"+strings.Join(t.Columns, "\t")+"\t")
	for _, row := range t.rows {
		fmt.Fprintln(w, strings.Join(row, "\t")+"\t")
	}
	w.Flush()
	fmt.Println()
}

// Failed renders an error as a cell: its first line, cut short; the notes under the
// tables give it whole.
func Failed(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	const maxLen = 60
	if len(msg) > maxLen {
		msg = msg[:maxLen-3] + "..."
	}
	return "failed: " + msg
}

// Millis renders a latency in milliseconds, or in seconds once they read better.
func Millis(d time.Duration) string {
	if d >= 10*time.Second {
		return Seconds(d)
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// Seconds renders a duration in seconds.
func Seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// Megabytes renders a size given in KiB.
func Megabytes(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

// Median returns the median of ds, which must not be empty.
func Median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return m
}

// Spread renders the median and maximum of the durations that succeeded, or why none
// did.
func Spread(ds []time.Duration, errs []error) (median, maximum string) {
	if len(ds) == 0 {
		if len(errs) > 0 {
			return Failed(errs[0]), ""
		}
		return "none", ""
	}
	return Millis(Median(ds)), Millis(slices.Max(ds))
}

// PrintNotes prints the notes under the tables, each once, with how often it came:
// trials often fail alike.
func PrintNotes(notes []string) {
	if len(notes) == 0 {
		return
	}
	fmt.Println("Notes:")
	count := map[string]int{}
	for _, n := range notes {
		count[n]++
	}
	for _, n := range notes {
		switch c := count[n]; {
		case c == 1:
			fmt.Println("  " + n)
		case c > 1:
			fmt.Printf("  %s (%d times)\n", n, c)
		}
		count[n] = 0
	}
}

// PrintCommand prints the command line and the kernel, which head every benchmark's
// figures.
func PrintCommand() {
	kernel := "unknown"
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		kernel = unix.ByteSliceToString(uts.Release[:])
	}
	fmt.Printf("command:  %s\n", strings.Join(append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...), " "))
	fmt.Printf("kernel:   Linux %s\n", kernel)
}
