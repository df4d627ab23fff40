//! loom models of select: one receiver selecting over two channels fed by
//! two senders gets both values exactly once (the losing case of the first
//! select is withdrawn, a waker that finds it skips it); a select send case
//! racing a plain receiver.

use crate::chan::{chan, Select};
use loom::thread;

fn select_recv2(a: &crate::Receiver<u32>, b: &crate::Receiver<u32>) -> u32 {
    let mut sel = Select::new();
    let ca = sel.recv(a);
    let cb = sel.recv(b);
    let i = sel.select();
    if i == ca.index() {
        ca.finish(&mut sel).unwrap()
    } else {
        cb.finish(&mut sel).unwrap()
    }
}

#[test]
fn select_on_two_channels() {
    loom::model(|| {
        let (ta, ra) = chan::<u32>(0);
        let (tb, rb) = chan::<u32>(0);
        // The senders are returned, not dropped (dropping would close).
        let t1 = thread::spawn(move || {
            ta.send(1).unwrap();
            ta
        });
        let t2 = thread::spawn(move || {
            tb.send(2).unwrap();
            tb
        });
        let x = select_recv2(&ra, &rb);
        let y = select_recv2(&ra, &rb);
        assert_eq!(x + y, 3);
        assert_ne!(x, y);
        t1.join().unwrap();
        t2.join().unwrap();
    });
}

#[test]
fn select_send_meets_receiver() {
    loom::model(|| {
        let (tx, rx) = chan::<u32>(0);
        let (_tx2, rx2) = chan::<u32>(0);
        let t = thread::spawn(move || rx.recv().unwrap());
        let mut sel = Select::new();
        let s = sel.send(&tx, 5);
        let r = sel.recv(&rx2);
        let i = sel.select();
        assert_eq!(i, s.index());
        let _ = r;
        s.finish(&mut sel).unwrap();
        assert_eq!(t.join().unwrap(), 5);
    });
}
