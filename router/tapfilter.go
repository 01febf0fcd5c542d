package router

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Packet types the kernel gives a tapped packet (linux/if_packet.h): those below
// packetOtherHost were received for this host.
const (
	packetOtherHost = 3
	packetOutgoing  = 4
)

// Snap lengths: control messages are read whole; of a data packet the IP header is
// all the router looks at (options included, at most 60 bytes).
const (
	snapControl = 65535
	snapData    = 60
)

// tapFilter is the tap's kernel filter. It runs on every packet the host sends or
// receives, from the IP header on, and passes:
//   - IGMP, and PIM to a link-local group, received (not sent) on any interface;
//   - routable multicast data with a TTL at or below the VIF threshold, anywhere;
//   - other routable multicast data on interfaces not in excluded.
func tapFilter(excluded []int) ([]bpf.RawInstruction, error) {
	var a filterAsm
	a.op(bpf.LoadExtension{Num: bpf.ExtProto})
	a.jump(bpf.JumpEqual, 0x0800, "", "reject") // IPv4
	a.op(bpf.LoadAbsolute{Off: 16, Size: 1})    // the destination's first byte
	a.jump(bpf.JumpGreaterOrEqual, 224, "", "reject")
	a.jump(bpf.JumpGreaterOrEqual, 240, "reject", "")
	a.op(bpf.LoadAbsolute{Off: 9, Size: 1}) // the protocol
	a.jump(bpf.JumpEqual, 2, "control", "")
	a.op(bpf.StoreScratch{Src: bpf.RegA, N: 0})
	a.op(bpf.LoadAbsolute{Off: 16, Size: 4})
	a.op(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xffffff00})
	a.jump(bpf.JumpEqual, 0xe0000000, "", "routable")
	a.op(bpf.LoadScratch{Dst: bpf.RegA, N: 0})
	a.jump(bpf.JumpEqual, 103, "control", "reject") // PIM; nothing else link-local

	a.label("routable")
	a.op(bpf.LoadAbsolute{Off: 8, Size: 1}) // the TTL
	a.jump(bpf.JumpGreaterThan, vifThreshold, "", "data")
	a.op(bpf.LoadExtension{Num: bpf.ExtInterfaceIndex})
	for _, ifindex := range excluded {
		a.jump(bpf.JumpEqual, uint32(ifindex), "reject", "")
	}
	a.label("data")
	a.op(bpf.RetConstant{Val: snapData})

	a.label("control")
	a.op(bpf.LoadExtension{Num: bpf.ExtType})
	a.jump(bpf.JumpGreaterOrEqual, packetOtherHost, "reject", "")
	a.op(bpf.RetConstant{Val: snapControl})

	a.label("reject")
	a.op(bpf.RetConstant{Val: 0})
	return a.assemble()
}

// filterAsm assembles a classic BPF program whose conditional jumps name labels,
// "" being the next instruction.
type filterAsm struct {
	ops    []asmOp
	labels map[string]int // label → index of the instruction that follows it
}

type asmOp struct {
	ins     bpf.Instruction // nil for a conditional jump
	cond    bpf.JumpTest
	val     uint32
	yes, no string
}

func (a *filterAsm) op(ins bpf.Instruction) { a.ops = append(a.ops, asmOp{ins: ins}) }

func (a *filterAsm) jump(cond bpf.JumpTest, val uint32, yes, no string) {
	a.ops = append(a.ops, asmOp{cond: cond, val: val, yes: yes, no: no})
}

func (a *filterAsm) label(name string) {
	if a.labels == nil {
		a.labels = make(map[string]int)
	}
	a.labels[name] = len(a.ops)
}

func (a *filterAsm) assemble() ([]bpf.RawInstruction, error) {
	prog := make([]bpf.Instruction, len(a.ops))
	for i, o := range a.ops {
		if o.ins != nil {
			prog[i] = o.ins
			continue
		}
		yes, err := a.skip(i, o.yes)
		if err != nil {
			return nil, err
		}
		no, err := a.skip(i, o.no)
		if err != nil {
			return nil, err
		}
		prog[i] = bpf.JumpIf{Cond: o.cond, Val: o.val, SkipTrue: yes, SkipFalse: no}
	}
	return bpf.Assemble(prog)
}

// skip is how many instructions a jump at i skips to reach label.
func (a *filterAsm) skip(i int, label string) (uint8, error) {
	if label == "" {
		return 0, nil
	}
	to, ok := a.labels[label]
	if !ok {
		return 0, fmt.Errorf("filter: no label %q", label)
	}
	d := to - i - 1
	if d < 0 || d > 255 {
		return 0, fmt.Errorf("filter: jump from %d to %q is %d instructions, beyond a classic BPF jump", i, label, d)
	}
	return uint8(d), nil
}
