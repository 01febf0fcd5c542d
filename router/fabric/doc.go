// Package fabric joins Kubernetes nodes whose network carries no multicast. Every
// node owns one VXLAN interface, and the kernel replicates what is sent on it to
// each peer in unicast (head-end), as its forwarding database says. PIM then runs
// over that interface as over a LAN.
//
// The interface carries the node's underlay address as a /32, so PIM speaks from
// it and a neighbour's PIM address is its underlay address: nothing needs mapping.
// Frames to a MAC without an entry of their own go to every peer through the
// all-zeros entry (SetFlood); a group's MAC can narrow that to the peers that
// joined it (SetGroups).
//
// PeerSet turns the configured peers, addresses or the DNS name of a headless
// Service, into the list of peers and finds the node itself in it.
package fabric
