use gort_sched::*;
#[test]
fn smoke() {
    let v = run(|| {
        let hs: Vec<_> = (0..1000).map(|i| go(move || i * 2)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
    });
    assert_eq!(v, 999 * 1000);
}
