//! loom models of channels: the unbuffered rendezvous (a value is handed
//! over exactly once whichever side arrives first), close racing a blocked
//! receiver and a sender, and the buffered hand-off of a blocked sender's
//! value to the buffer's tail.

use crate::chan::{chan, RecvError};
use loom::thread;

#[test]
fn unbuffered_rendezvous() {
    loom::model(|| {
        let (tx, rx) = chan::<u32>(0);
        let t = thread::spawn(move || tx.send(7).unwrap());
        assert_eq!(rx.recv(), Ok(7));
        t.join().unwrap();
    });
}

#[test]
fn close_wakes_blocked_receiver() {
    loom::model(|| {
        let (tx, rx) = chan::<u32>(0);
        let t = thread::spawn(move || rx.recv());
        tx.close();
        assert_eq!(t.join().unwrap(), Err(RecvError));
    });
}

#[test]
fn send_then_close_is_received_before_closed() {
    loom::model(|| {
        let (tx, rx) = chan::<u32>(1);
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            drop(tx); // the last sender closes
        });
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.recv(), Err(RecvError));
        t.join().unwrap();
    });
}

#[test]
fn blocked_sender_value_moves_to_buffer_tail() {
    loom::model(|| {
        let (tx, rx) = chan::<u32>(1);
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap(); // may block until the first is taken
        });
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.recv(), Ok(2));
        t.join().unwrap();
    });
}
