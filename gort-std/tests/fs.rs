//! `gort_std::fs`: std::fs's API from goroutines, each call on the blocking
//! pool. Every test works in its own directory under the system's temp dir.

use gort_std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh directory for one test, removed (with std::fs) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("gort-fs-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn whole_file_calls() {
    let dir = TempDir::new("whole_file_calls");
    let d = dir.path().to_path_buf();
    gort_sched::run(move || {
        let p = d.join("a.txt");
        fs::write(&p, "hello, gort").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"hello, gort");
        assert_eq!(fs::read_to_string(&p).unwrap(), "hello, gort");
        let m = fs::metadata(&p).unwrap();
        assert!(m.is_file());
        assert_eq!(m.len(), 11);
        assert!(fs::exists(&p).unwrap());
        assert!(!fs::exists(d.join("missing")).unwrap());
        let e = fs::read(d.join("missing")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = File::open(d.join("missing")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    });
}

#[test]
fn file_read_write_seek() {
    let dir = TempDir::new("file_read_write_seek");
    let d = dir.path().to_path_buf();
    gort_sched::run(move || {
        let p = d.join("f.bin");
        let mut f = File::create(&p).unwrap();
        f.write_all(b"0123456789").unwrap();
        assert_eq!(f.write(b"ab").unwrap(), 2);
        f.flush().unwrap();
        f.sync_all().unwrap();
        assert_eq!(f.metadata().unwrap().len(), 12);
        drop(f);

        let mut f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let mut buf = [0u8; 4];
        f.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"0123");
        assert_eq!(f.stream_position().unwrap(), 4);
        assert_eq!(f.seek(SeekFrom::End(-2)).unwrap(), 10);
        let mut rest = String::new();
        f.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "ab");
        assert_eq!(f.seek(SeekFrom::Start(2)).unwrap(), 2);
        f.write_all(b"XY").unwrap();
        f.set_len(6).unwrap();
        f.sync_data().unwrap();
        f.rewind().unwrap();
        let mut all = Vec::new();
        assert_eq!(f.read_to_end(&mut all).unwrap(), 6);
        assert_eq!(all, b"01XY45");
        assert_eq!(f.read(&mut buf).unwrap(), 0, "at the end");

        // Read, Write and Seek for &File too, and a dup'd handle shares the
        // offset.
        let g = f.try_clone().unwrap();
        let mut r = &g;
        r.seek(SeekFrom::Start(4)).unwrap();
        let mut two = [0u8; 2];
        (&f).read_exact(&mut two).unwrap();
        assert_eq!(&two, b"45");
        (&f).write_all(b"!").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"01XY45!");

        // Append and create_new.
        let mut a = OpenOptions::new().append(true).open(&p).unwrap();
        a.write_all(b"?").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "01XY45!?");
        let e = File::create_new(&p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        let e = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        // std interop.
        let s: std::fs::File = File::open(&p).unwrap().into_std();
        assert_eq!(File::from(s).metadata().unwrap().len(), 8);
    });
}

#[test]
fn directories() {
    let dir = TempDir::new("directories");
    let d = dir.path().to_path_buf();
    gort_sched::run(move || {
        let sub = d.join("sub");
        fs::create_dir(&sub).unwrap();
        assert_eq!(
            fs::create_dir(&sub).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        fs::create_dir_all(d.join("x/y/z")).unwrap();
        assert!(fs::metadata(d.join("x/y/z")).unwrap().is_dir());

        // More entries than one batch of read_dir.
        const N: usize = 300;
        for i in 0..N {
            fs::write(sub.join(format!("f{i:03}")), [i as u8]).unwrap();
        }
        fs::create_dir(sub.join("inner")).unwrap();
        let mut names = Vec::new();
        for e in fs::read_dir(&sub).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            assert_eq!(e.path(), sub.join(&name));
            let t = e.file_type().unwrap();
            if name == "inner" {
                assert!(t.is_dir());
            } else {
                assert!(t.is_file());
                assert_eq!(e.metadata().unwrap().len(), 1);
            }
            names.push(name);
        }
        names.sort();
        let mut want: Vec<String> = (0..N).map(|i| format!("f{i:03}")).collect();
        want.push("inner".into());
        assert_eq!(names, want);

        // rename, copy, canonicalize, links.
        fs::rename(sub.join("f000"), sub.join("renamed")).unwrap();
        assert!(!fs::exists(sub.join("f000")).unwrap());
        assert_eq!(fs::copy(sub.join("renamed"), d.join("copied")).unwrap(), 1);
        assert_eq!(fs::read(d.join("copied")).unwrap(), [0]);
        let c = fs::canonicalize(d.join("x/y/../y/z")).unwrap();
        assert_eq!(c, fs::canonicalize(d.join("x/y/z")).unwrap());
        assert!(c.is_absolute());
        fs::hard_link(d.join("copied"), d.join("linked")).unwrap();
        assert_eq!(fs::read(d.join("linked")).unwrap(), [0]);
        std::os::unix::fs::symlink(d.join("copied"), d.join("sym")).unwrap();
        assert_eq!(fs::read_link(d.join("sym")).unwrap(), d.join("copied"));
        assert!(fs::symlink_metadata(d.join("sym"))
            .unwrap()
            .file_type()
            .is_symlink());

        // Removal.
        fs::remove_file(d.join("copied")).unwrap();
        assert_eq!(
            fs::remove_file(d.join("copied")).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert!(fs::remove_dir(&sub).is_err(), "not empty");
        fs::remove_dir(sub.join("inner")).unwrap();
        fs::remove_dir_all(&sub).unwrap();
        assert!(!fs::exists(&sub).unwrap());
    });
}

#[test]
fn from_a_plain_thread() {
    let dir = TempDir::new("from_a_plain_thread");
    let p = dir.path().join("t");
    fs::write(&p, b"thread").unwrap();
    let mut s = String::new();
    File::open(&p).unwrap().read_to_string(&mut s).unwrap();
    assert_eq!(s, "thread");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// Many goroutines at once, each with its own file.
#[test]
fn concurrent_goroutines() {
    let dir = TempDir::new("concurrent_goroutines");
    let d = dir.path().to_path_buf();
    let hs: Vec<_> = (0..50)
        .map(|i| {
            let p = d.join(format!("g{i}"));
            gort_sched::go(move || {
                let data = vec![i as u8; 10_000 + i];
                fs::write(&p, &data).unwrap();
                assert_eq!(fs::read(&p).unwrap(), data);
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(fs::read_dir(&d).unwrap().count(), 50);
}

const CHILD_ENV: &str = "GORT_STD_FS_CHILD";

/// Runs one test of this binary in a child process with GOMAXPROCS=1,
/// killed after 60 s; returns whether it succeeded and its output.
fn run_child(test: &str) -> (bool, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .env("GOMAXPROCS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill(); // hung: fails below
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("running 1 test") && stdout.contains(&format!("test {test} ...")),
        "the child process did not run test {test:?}; its stdout:\n{stdout}"
    );
    let text = stdout + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Opening a FIFO for reading blocks until a writer opens it. With one P,
/// the writer is a goroutine bound to the reader's own M: it can only run
/// if the reader's open parks the goroutine instead of blocking the thread
/// (with std::fs this test hangs).
#[test]
fn a_blocked_open_does_not_stall_the_goroutines_of_its_thread() {
    const NAME: &str = "a_blocked_open_does_not_stall_the_goroutines_of_its_thread";
    if std::env::var(CHILD_ENV).as_deref() != Ok(NAME) {
        let (ok, out) = run_child(NAME);
        assert!(ok, "{out}");
        return;
    }
    let dir = TempDir::new("fifo");
    let fifo = dir.path().join("fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success(), "mkfifo failed");
    let got = gort_sched::run(move || {
        assert_eq!(gort_sched::gomaxprocs(0), 1);
        let (go_tx, go_rx) = gort_std::chan::<()>(0);
        let f2 = fifo.clone();
        let me = std::thread::current().id();
        let writer = gort_sched::go(move || {
            go_rx.recv().unwrap();
            let mut w = OpenOptions::new().write(true).open(&f2).unwrap();
            w.write_all(b"through the fifo").unwrap();
            std::thread::current().id()
        });
        // Let the writer start (on this M: it is in this P's runnext) and
        // park on the channel: from now on it runs only on this thread.
        gort_sched::gosched();
        go_tx.send(()).unwrap();
        let mut r = File::open(&fifo).unwrap(); // blocks until the writer opens
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        let wt = writer.join().unwrap();
        assert_eq!(wt, me, "the writer ran on the reader's thread");
        s
    });
    assert_eq!(got, "through the fifo");
}
