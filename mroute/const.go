package mroute

import "errors"

// MaxVIFs is the kernel's MAXVIFS: the number of VIF slots in one multicast
// routing table, the register VIF included.
const MaxVIFs = 32

// ErrTableInUse is returned (wrapped) by Open when another socket already owns
// the table.
var ErrTableInUse = errors.New("another multicast router owns this table in this network namespace " +
	"(is pimd, FRR's pimd, smcroute, igmpproxy or mrouted running?)")

// ErrVIFsExhausted is returned (wrapped) by VIFTable.Alloc when every slot is taken.
var ErrVIFsExhausted = errors.New("all 32 VIFs in use (kernel limit MAXVIFS)")

// ErrTruncated is returned (wrapped) by Socket.Read when a message did not fit
// the caller's buffer.
var ErrTruncated = errors.New("message truncated")

// Socket options at level IPPROTO_IP, from <linux/mroute.h>.
const (
	mrtInit   = 200
	mrtDone   = 201
	mrtAddVIF = 202
	mrtDelVIF = 203
	mrtAddMFC = 204
	mrtDelMFC = 205
	mrtAssert = 207
	mrtPIM    = 208
	mrtTable  = 209
	mrtFlush  = 212
)

// vifctl flags.
const (
	viffRegister   = 0x4
	viffUseIfindex = 0x8
)

// ioctls on the multicast routing socket (SIOCPROTOPRIVATE and the next one).
const (
	siocGetVIFCnt = 0x89e0
	siocGetSGCnt  = 0x89e1
)

// Upcall message types (igmpmsg.im_msgtype).
const (
	NoCache       UpcallType = 1
	WrongVIF      UpcallType = 2
	WholePkt      UpcallType = 3
	WrongVIFWhole UpcallType = 4
)

// FlushFlags select what MRT_FLUSH removes. The plain flags remove what the
// table's owner installed; the static ones what other sockets installed.
type FlushFlags int

// MRT_FLUSH flags.
const (
	FlushMFC        FlushFlags = 1
	FlushMFCStatic  FlushFlags = 2
	FlushVIFs       FlushFlags = 4
	FlushVIFsStatic FlushFlags = 8
)

// Netlink values that golang.org/x/sys/unix does not define.
const (
	rtnlFamilyIPMR = 128
	rtTableDefault = 253
)
