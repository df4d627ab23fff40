//! Walking a suspended context's stack: the frames of the code that
//! suspended are found, with their source lines, also once compacted.

use gort_os::context::{Context, Label, Suspender};
use gort_os::stack::Stack;
use gort_os::unwind::{backtrace_here, symbolize};
use std::cell::Cell;
use std::rc::Rc;

#[inline(never)]
fn very_distinct_os_frame(s: Suspender) {
    // SAFETY: on the context's own stack while it runs.
    unsafe { s.suspend() };
    std::hint::black_box(());
}

#[inline(never)]
fn middle_os_frame(s: Suspender) {
    very_distinct_os_frame(std::hint::black_box(s));
    std::hint::black_box(());
}

#[inline(never)]
fn outer_os_frame(s: Suspender) {
    middle_os_frame(std::hint::black_box(s));
    std::hint::black_box(());
}

fn functions(addrs: &[usize]) -> Vec<String> {
    addrs
        .iter()
        .flat_map(|&a| {
            symbolize(a)
                .iter()
                .map(|f| f.function.clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_suspended_context_unwinds_to_the_code_that_suspended() {
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    // SAFETY: the body suspends only through its own Suspender.
    let mut c = unsafe {
        Context::new(Stack::new(64 * 1024).unwrap(), Label::default(), move |s| {
            outer_os_frame(s);
            d.set(true);
        })
    };
    let mut out = Vec::new();
    // SAFETY: not started: nothing to walk.
    assert!(!unsafe { c.backtrace(&mut out, 64) });
    c.resume();
    // SAFETY: suspended; nothing resumes it during the call.
    assert!(unsafe { c.backtrace(&mut out, 64) });
    let names = functions(&out);
    let at = |f: &str| names.iter().position(|n| n.ends_with(f));
    let (a, b, o) = (
        at("very_distinct_os_frame"),
        at("middle_os_frame"),
        at("outer_os_frame"),
    );
    assert!(
        a.is_some() && a < b && b < o,
        "the three frames, innermost first: {names:#?}"
    );
    let first = symbolize(out[0]);
    assert!(
        first
            .iter()
            .any(|f| f.function.ends_with("Suspender::suspend")),
        "the walk starts in suspend: {names:#?}"
    );
    // Source lines of the user frame.
    let f = out
        .iter()
        .flat_map(|&a| symbolize(a).to_vec())
        .find(|f| f.function.ends_with("very_distinct_os_frame"))
        .unwrap();
    assert!(
        f.file.as_deref().unwrap_or("").ends_with("unwind.rs"),
        "{f:?}"
    );
    assert!(f.line.is_some());

    // The same walk from the compacted copy.
    // SAFETY: nothing else touches the suspended stack.
    if unsafe { c.compact() }.is_some() {
        let mut again = Vec::new();
        // SAFETY: as above.
        assert!(unsafe { c.backtrace(&mut again, 64) });
        assert_eq!(again, out);
    }
    c.resume();
    assert!(done.get());
    // SAFETY: finished: nothing to walk.
    assert!(!unsafe { c.backtrace(&mut out, 64) });
}

#[inline(never)]
fn another_distinct_frame() -> Vec<usize> {
    let mut v = Vec::new();
    backtrace_here(&mut v, 16);
    std::hint::black_box(v)
}

#[test]
fn the_calling_threads_stack() {
    let v = another_distinct_frame();
    let names = functions(&v);
    assert!(
        names[0].ends_with("another_distinct_frame"),
        "innermost first, backtrace_here itself skipped: {names:#?}"
    );
    assert!(v.len() <= 16);
}
