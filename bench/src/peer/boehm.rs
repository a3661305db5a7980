//! The Boehm peer's child process: builds one workload in bdwgc's heap, warms the collector up
//! and answers `mark` requests (see the parent module for the protocol).

use std::io::{BufRead, Write};
use std::time::Instant;

use super::boehm_ffi::{Boehm, Check, Collection};
use super::{PeerError, PeerMark, Ready, Reply, Result, send};
use crate::workload::{self, GraphPlan, Kind};

/// Warm-up collections never exceed this many (the graph settles after about ten: bdwgc's mark
/// stack starts at 4096 entries and doubles once per overflowing collection).
const MAX_WARMUPS: usize = 64;

/// The graph's plan as the C side takes it: bytes per object and edges.
type Plan = (Vec<u16>, Vec<[usize; 2]>);

pub(super) fn serve(
    kind: Kind,
    scale: f64,
    cut: bool,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> Result<()> {
    let start = Instant::now();
    let mut gc = Boehm::init()?;
    let plan = build(&mut gc, kind, scale)?;
    let build_ms = start.elapsed().as_secs_f64() * 1e3;
    let plan_ref = plan.as_ref().map(|(b, e)| (b.as_slice(), e.as_slice()));

    let mut warmups = 0;
    let mut last_heap = None;
    let mut settled = false;
    let mut c = Collection::default();
    while warmups < MAX_WARMUPS {
        c = gc.collect()?;
        warmups += 1;
        settled = last_heap == Some(c.heap_bytes) && c.overflows == 0;
        if settled {
            break;
        }
        last_heap = Some(c.heap_bytes);
    }
    if cut {
        gc.cut()?;
    }
    let check = gc.check(plan_ref)?;
    send(
        output,
        &Reply::Ready(Ready {
            collector: format!("bdwgc {}", gc.version),
            markers: gc.markers,
            build_ms,
            warmups,
            settled,
            counts_overflows: gc.counts_overflows,
            check: mark_reply(c, check),
        }),
    )?;

    for line in input.lines() {
        let line = line.map_err(|e| PeerError(format!("boehm: cannot read a request: {e}")))?;
        match line.trim() {
            "mark" => {
                let c = gc.collect()?;
                let check = gc.check(plan_ref)?;
                send(output, &Reply::Mark(mark_reply(c, check)))?;
            }
            "quit" => break,
            other => return Err(PeerError(format!("boehm: unknown request {other:?}"))),
        }
    }
    Ok(())
}

/// Builds `kind` at `scale` from the same definitions as sencha's heap; returns the graph's
/// plan, which its checks need.
fn build(gc: &mut Boehm, kind: Kind, scale: f64) -> Result<Option<Plan>> {
    match kind {
        Kind::Tree | Kind::Shuffled => {
            let n = workload::tree_nodes(scale);
            gc.build_tree(&workload::tree_alloc_order(n, kind == Kind::Shuffled))?;
            Ok(None)
        }
        Kind::List => {
            gc.build_list(workload::list_cells(scale))?;
            Ok(None)
        }
        Kind::Graph => {
            let plan = GraphPlan::new(workload::graph_objects(scale));
            // Sizes are at most 512, so they fit 16 bits.
            let bytes = (0..plan.class.len())
                .map(|i| plan.bytes(i) as u16)
                .collect::<Vec<_>>();
            gc.build_graph(&bytes, &plan.edges)?;
            Ok(Some((bytes, plan.edges)))
        }
        other => Err(PeerError(format!(
            "boehm has no version of workload {}",
            other.name()
        ))),
    }
}

fn mark_reply(c: Collection, check: Check) -> PeerMark {
    PeerMark {
        ms: c.mark_ns as f64 / 1e6,
        overflows: c.overflows,
        heap_bytes: c.heap_bytes,
        objects: check.objects,
        bytes: check.bytes,
        bad: check.bad,
    }
}
