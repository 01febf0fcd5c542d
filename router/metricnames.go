package router

import (
	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/pim"
)

// counterFamily is a metric of /metrics made of the counters of show status: one
// series, or one per value of its label. Every series it names is shown from the
// start, at zero until its counter moves, so that rate() and alerts see it begin.
type counterFamily struct {
	name, help string
	label      string // what tells its series apart; "" when it has one
	series     []counterSeries
}

// counterSeries is a counter of show status and its label's value in its family.
type counterSeries struct{ counter, value string }

// one is the series of a family without a label.
func one(counter string) []counterSeries { return []counterSeries{{counter: counter}} }

// by makes a series per value, each the counter named prefix+value.
func by(prefix string, values ...string) []counterSeries {
	s := make([]counterSeries, len(values))
	for i, v := range values {
		s[i] = counterSeries{counter: prefix + v, value: v}
	}
	return s
}

// counterFamilies are all the counters of show status, each in exactly one family.
// The sums that show status keeps beside their reasons (igmp_malformed,
// igmp_refused, pim_malformed, pim_refused) are left out: sum() over the reasons
// gives them. TestCounterFamiliesComplete finds the counters the code names.
var counterFamilies = []counterFamily{
	// The kernel's upcalls.
	{"mrouterd_upcalls_total", "Upcalls from the kernel's forwarding path, by type.", "type",
		by("upcall_", mroute.NoCache.String(), mroute.WrongVIF.String(), mroute.WholePkt.String(), mroute.WrongVIFWhole.String())},
	{"mrouterd_upcalls_ignored_total", "Upcalls that changed nothing, by reason.", "reason", []counterSeries{
		{"upcall_unknown_vif", "unknown_vif"},               // NOCACHE on a VIF no interface holds
		{"upcall_unrouted", "unrouted"},                     // NOCACHE for a flow no route or member wants
		{"wrongvif_ignored", "wrongvif"},                    // WRONGVIF calling for no assert or switchover
		{"register_upcall_unchecked", "register_unchecked"}, // NOCACHE from the register VIF before its Register was checked
		{"register_not_registering", "not_registering"},     // WHOLEPKT for a flow no longer registering
	}},

	// Routes and the kernel's MFC.
	{"mrouterd_routes_learned_total", "Routes learned from NOCACHE upcalls.", "", one("routes_learned")},
	{"mrouterd_waiting_sources_routed_total", "Sources unrouted when the kernel asked, routed once their group had state.", "", one("waiting_sources_routed")},
	{"mrouterd_routes_learned_refused_total", "Flows not learned because router.max-learned-routes was reached.", "", one("routes_learned_refused")},
	{"mrouterd_routes_expired_total", "Learned routes removed after router.idle-timeout without traffic.", "", one("routes_expired")},
	{"mrouterd_mfc_added_total", "MFC entries written to the kernel.", "", one("mfc_added")},
	{"mrouterd_mfc_deleted_total", "MFC entries deleted from the kernel.", "", one("mfc_deleted")},
	{"mrouterd_mfc_errors_total", "MFC entries the kernel refused to write or delete.", "", one("mfc_errors")},
	{"mrouterd_mfc_dump_errors_total", "Failed reads of the kernel's MFC.", "", one("mfc_dump_errors")},
	{"mrouterd_mfc_drift_total", "MFC entries found differing from the routes, and healed.", "", one("mfc_drift")},
	{"mrouterd_rib_refresh_unsettled_total", "Route recomputations stopped before they settled.", "", one("refresh_unsettled")},
	{"mrouterd_rpf_unreachable_total", "Reverse-path lookups that found no unicast route.", "", one("rpf_unreachable")},
	{"mrouterd_unicast_route_changes_total", "Unicast route changes heard from netlink.", "", one("route_changes")},
	{"mrouterd_netlink_resyncs_total", "Full rereads of links and addresses after netlink lost events.", "", one("netlink_resyncs")},
	{"mrouterd_vif_exhausted_total", "Times an interface needed a VIF and none was free.", "", one("vif_exhausted")},
	{"mrouterd_vif_errors_total", "VIFs the kernel refused to add.", "", one("vif_errors")},

	// Sources seen by the packet tap.
	{"mrouterd_sources_without_vif_total", "Sources seen sending on an interface without a VIF, which then gets one.", "", one("sources_without_vif")},
	{"mrouterd_unroutable_sources_total", "Local sources found sending with a TTL the kernel does not forward.", "", one("unroutable_sources")},
	{"mrouterd_unroutable_sources_refused_total", "Unroutable sources not reported because the list of them was full.", "", one("unroutable_sources_refused")},
	{"mrouterd_tap_errors_total", "Failures to set the packet tap's filter.", "", one("tap_errors")},

	// Sockets read outside the loop.
	{"mrouterd_read_errors_total", "Failed reads, by socket.", "socket", []counterSeries{
		{"mrt_read_errors", "mrt"}, {"pim_read_errors", "pim"}, {"tap_read_errors", "tap"},
	}},
	{"mrouterd_queue_drops_total", "Messages read and dropped because the loop's queue was full, by socket.", "socket", []counterSeries{
		{"mrt_queue_full", "mrt"}, {"pim_queue_full", "pim"}, {"tap_queue_full", "tap"},
	}},

	// IGMP.
	{"mrouterd_igmp_received_total", "IGMP messages accepted.", "", one("igmp_received")},
	{"mrouterd_igmp_ignored_total", "IGMP packets on an interface without an IGMP querier.", "", one("igmp_ignored_interface")},
	{"mrouterd_igmp_malformed_total", "IGMP packets dropped as malformed, by reason.", "reason", by("igmp_malformed_",
		igmp.ReasonShort, igmp.ReasonChecksum, igmp.ReasonUnknownType, igmp.ReasonBadLength, igmp.ReasonTruncatedRecord,
		igmp.ReasonTooManySources, igmp.ReasonBadGroup, igmp.ReasonBadRecordType, igmp.ReasonBadSource,
		igmp.ReasonBadIPHeader, igmp.ReasonIPChecksum, igmp.ReasonNotIGMP, igmp.ReasonTTL)},
	{"mrouterd_igmp_refused_total", "IGMP messages refused by their addresses, by reason.", "reason",
		by("igmp_refused_", igmp.ReasonOffSubnet, igmp.ReasonDestination)},
	{"mrouterd_igmp_groups_refused_total", "New groups refused because igmp.max-groups was reached.", "", one("igmp_groups_refused")},
	{"mrouterd_igmp_sources_refused_total", "New sources refused because igmp.max-sources was reached.", "", one("igmp_sources_refused")},
	{"mrouterd_igmp_ssm_asm_joins_ignored_total", "Any-source joins of a group in the SSM range, ignored.", "", one("igmp_ssm_asm_join_ignored")},
	{"mrouterd_igmp_queries_sent_total", "IGMP queries sent.", "", one("igmp_queries_sent")},
	{"mrouterd_igmp_send_errors_total", "IGMP queries that failed to send.", "", one("igmp_send_errors")},

	// PIM.
	{"mrouterd_pim_received_total", "PIM messages accepted, by type.", "type", []counterSeries{
		{"pim_hellos_received", "hello"},
		{"pim_joinprunes_received", "join_prune"},
		{"registers_received", "register"},
		{"register_stops_received", "register_stop"},
		{"asserts_received", "assert"},
		{"pim_not_handled", "unhandled"},
	}},
	{"mrouterd_pim_sent_total", "PIM messages sent, by type.", "type", []counterSeries{
		{"pim_hellos_sent", "hello"},
		{"pim_joinprunes_sent", "join_prune"},
		{"fabric_announcements_sent", "fabric_announcement"}, // a Join/Prune of the fabric's own
		{"registers_sent", "register"},
		{"null_registers_sent", "null_register"},
		{"register_stops_sent", "register_stop"},
		{"asserts_sent", "assert"},
	}},
	{"mrouterd_pim_send_errors_total", "PIM messages that failed to send.", "", one("pim_send_errors")},
	{"mrouterd_pim_ignored_total", "PIM packets on an interface without PIM.", "", one("pim_ignored_interface")},
	{"mrouterd_pim_malformed_total", "PIM packets dropped as malformed, by reason.", "reason", append(by("pim_malformed_",
		pim.ReasonShort, pim.ReasonVersion, pim.ReasonChecksum, pim.ReasonUnknownType, pim.ReasonTruncated,
		pim.ReasonBadAddressFamily, pim.ReasonBadEncoding, pim.ReasonBadMask, pim.ReasonTooMany,
		pim.ReasonBadOption, pim.ReasonTooLong),
		counterSeries{"register_malformed", "register-packet"}, // a Register whose inner packet is not IPv4
	)},
	{"mrouterd_pim_refused_total", "PIM messages not believed, by reason.", "reason", by("pim_refused_",
		pimRefusedDestination, pimRefusedTTL, pimRefusedOffSubnet, pimRefusedNotAllowed, pimRefusedNotNeighbor, pimRefusedNotRP)},
	{"mrouterd_pim_neighbor_changes_total", "PIM neighbours coming, going and restarting.", "change",
		by("pim_neighbors_", "up", "down", "restarted")},
	{"mrouterd_pim_neighbors_refused_total", "Hellos from new routers refused because pim.max-neighbors was reached.", "", one("pim_neighbors_refused")},
	{"mrouterd_pim_hello_addresses_refused_total", "Secondary addresses of Hellos beyond the 64 kept.", "", one("pim_hello_addresses_refused")},
	{"mrouterd_pim_source_prefixes_refused_total", "Source prefixes of Hellos beyond the most kept per neighbour.", "", one("pim_source_prefixes_refused")},
	{"mrouterd_pim_joinprune_ignored_total", "Joins and prunes ignored, by reason.", "reason", by("pim_joinprune_ignored_",
		"interface", "group", "source", "source-flags", "no-rp", "rp-mismatch", "max-joins", "max-joins-per-neighbor")},
	{"mrouterd_pim_registers_refused_total", "Registers for new sources refused because pim.max-registered-sources was reached.", "", one("registers_refused")},
	{"mrouterd_pim_registers_stopped_total", "Register-Stops decided, by reason.", "reason", by("register_stop_",
		"not_rp", "refused", "spt", "no_receivers")},
	{"mrouterd_pim_assert_triggers_total", "Data that arrived on an outgoing interface, starting an assert.", "", one("assert_triggers")},
	{"mrouterd_pim_asserts_ignored_total", "(*,G) asserts, not handled.", "", one("asserts_ignored")},
	{"mrouterd_pim_spt_switches_total", "Switches from the shared tree to a source's tree.", "", one("spt_switches")},

	// The node fabric.
	{"mrouterd_fabric_errors_total", "Failures to set up the fabric's device or replication, or to list the routes it announces.", "", one("fabric_errors")},
	{"mrouterd_fabric_resolve_errors_total", "Failures to resolve the fabric's dns: peers.", "", one("fabric_resolve_errors")},
	{"mrouterd_fabric_joins_refused_total", "Fabric joins refused because a peer's table was full.", "", one("fabric_joins_refused")},
	{"mrouterd_fabric_prefixes_cut_total", "Local source prefixes left out of the fabric's announcement.", "", one("fabric_prefixes_cut")},
	{"mrouterd_fabric_rp_changes_total", "Changes of the RP the fabric's nodes chose among themselves.", "", one("fabric_rp_changes")},

	// The daemon.
	{"mrouterd_reloads_total", "Configs reloaded.", "", one("reloads")},
	{"mrouterd_reload_failures_total", "Reloads refused, the running config kept.", "", one("reload_failed")},
	{"mrouterd_restarts_total", "Restarts in place handed over to the program on disk.", "", one("restarts")},
	{"mrouterd_restart_refusals_total", "Restarts in place refused, the running daemon serving on.", "", one("restarts_refused")},
	{"mrouterd_control_bad_requests_total", "Control API requests for no endpoint.", "", one("control_bad_requests")},
}
