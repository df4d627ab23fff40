//! How many CPUs this process may use: the affinity mask, and the cgroup CPU
//! bandwidth limit that Go 1.25 honours for the default `GOMAXPROCS`.
//!
//! Go 1.25 (`runtime/cgroup_linux.go`): the default is
//! `min(num_cpu, max(2, ceil(quota / period)))` when a limit exists. We read the
//! limit of the process's own cgroup and of each ancestor up to the mount root
//! and take the tightest, for cgroup v2 (`cpu.max`) and v1
//! (`cpu.cfs_quota_us` / `cpu.cfs_period_us`).

use std::fs;
use std::path::{Path, PathBuf};

/// Logical CPUs this process may run on (its affinity mask), as Go's
/// `runtime.NumCPU`. At least 1.
pub fn num_cpu() -> usize {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `set` is a plain bitmask that sched_getaffinity fills in; we
        // pass its true size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
                let n = libc::CPU_COUNT(&set);
                if n > 0 {
                    return n as usize;
                }
            }
        }
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The cgroup CPU bandwidth limit in CPUs (e.g. `1.5`), if one is set.
pub fn cgroup_cpu_limit() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        let cgroup = fs::read_to_string("/proc/self/cgroup").ok()?;
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
        limit_from(&cgroup, &mountinfo, &|p: &Path| fs::read_to_string(p).ok())
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The default number of Ps, as Go 1.25 computes it:
/// `min(num_cpu, max(2, ceil(limit)))` under a cgroup limit, else `num_cpu`.
pub fn default_procs() -> usize {
    procs_for(num_cpu(), cgroup_cpu_limit())
}

fn procs_for(ncpu: usize, limit: Option<f64>) -> usize {
    match limit {
        Some(l) => ncpu.min((l.ceil() as usize).max(2)).max(1),
        None => ncpu.max(1),
    }
}

/// Finds the cgroup directories of the `cpu` controller (v1) or the unified
/// hierarchy (v2) and reads the tightest limit along the path to the root.
fn limit_from(
    cgroup: &str,
    mountinfo: &str,
    read: &dyn Fn(&Path) -> Option<String>,
) -> Option<f64> {
    let mut best: Option<f64> = None;
    for line in cgroup.lines() {
        // hierarchy-ID:controller-list:cgroup-path
        let mut it = line.splitn(3, ':');
        let (_, controllers, path) = (it.next()?, it.next()?, it.next()?);
        let v2 = controllers.is_empty();
        if !v2 && !controllers.split(',').any(|c| c == "cpu") {
            continue;
        }
        let Some((mount_root, mount_point)) = find_mount(mountinfo, v2) else {
            continue;
        };
        // The cgroup path is relative to the hierarchy root; the mount shows
        // `mount_root` of it at `mount_point`.
        let rel = path.strip_prefix(mount_root).unwrap_or(path);
        let mut dir = PathBuf::from(mount_point);
        dir.push(rel.trim_start_matches('/'));
        let top = PathBuf::from(mount_point);
        loop {
            let l = if v2 {
                read(&dir.join("cpu.max")).and_then(|s| parse_cpu_max(&s))
            } else {
                let q = read(&dir.join("cpu.cfs_quota_us"));
                let p = read(&dir.join("cpu.cfs_period_us"));
                match (q, p) {
                    (Some(q), Some(p)) => parse_cfs(&q, &p),
                    _ => None,
                }
            };
            if let Some(l) = l {
                best = Some(best.map_or(l, |b: f64| b.min(l)));
            }
            if dir == top || !dir.pop() || !dir.starts_with(&top) {
                break;
            }
        }
    }
    best
}

/// Returns (root within the hierarchy, mount point) of the cgroup2 mount or
/// of the v1 mount carrying the `cpu` controller.
fn find_mount(mountinfo: &str, v2: bool) -> Option<(&str, &str)> {
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        let (pre, post) = line.split_once(" - ")?;
        let f: Vec<&str> = pre.split(' ').collect();
        let g: Vec<&str> = post.split(' ').collect();
        if f.len() < 5 || g.len() < 3 {
            continue;
        }
        let ok = if v2 {
            g[0] == "cgroup2"
        } else {
            g[0] == "cgroup" && g[2].split(',').any(|o| o == "cpu")
        };
        if ok {
            return Some((f[3], f[4]));
        }
    }
    None
}

/// `cpu.max`: "max 100000" (no limit) or "150000 100000".
fn parse_cpu_max(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let quota = it.next()?;
    let period: f64 = it.next()?.parse().ok()?;
    if quota == "max" || period <= 0.0 {
        return None;
    }
    let q: f64 = quota.parse().ok()?;
    (q > 0.0).then(|| q / period)
}

/// v1: quota of -1 means no limit.
fn parse_cfs(quota: &str, period: &str) -> Option<f64> {
    let q: i64 = quota.trim().parse().ok()?;
    let p: i64 = period.trim().parse().ok()?;
    (q > 0 && p > 0).then(|| q as f64 / p as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn fake(files: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let m: HashMap<PathBuf, String> = files
            .iter()
            .map(|(k, v)| (PathBuf::from(k), v.to_string()))
            .collect();
        move |p: &Path| m.get(p).cloned()
    }

    const MI_V2: &str = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";

    #[test]
    fn v2_limit_with_ancestor_tighter() {
        let cg = "0::/a/b\n";
        let read = fake(&[
            ("/sys/fs/cgroup/a/b/cpu.max", "max 100000\n"),
            ("/sys/fs/cgroup/a/cpu.max", "150000 100000\n"),
        ]);
        assert_eq!(limit_from(cg, MI_V2, &read), Some(1.5));
    }

    #[test]
    fn v2_no_limit() {
        let read = fake(&[("/sys/fs/cgroup/cpu.max", "max 100000\n")]);
        assert_eq!(limit_from("0::/\n", MI_V2, &read), None);
    }

    #[test]
    fn v2_namespaced_root() {
        // Inside a cgroup namespace the mount root is the process's own group.
        let mi = "30 23 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let read = fake(&[("/sys/fs/cgroup/cpu.max", "50000 100000")]);
        assert_eq!(limit_from("0::/kubepods/pod1\n", mi, &read), Some(0.5));
    }

    #[test]
    fn v1_cfs_quota() {
        let cg = "4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n";
        let mi = "40 30 0:35 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let read = fake(&[
            (
                "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us",
                "250000\n",
            ),
            (
                "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us",
                "100000\n",
            ),
        ]);
        assert_eq!(limit_from(cg, mi, &read), Some(2.5));
        let read = fake(&[
            (
                "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us",
                "-1\n",
            ),
            (
                "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us",
                "100000\n",
            ),
        ]);
        assert_eq!(limit_from(cg, mi, &read), None);
    }

    #[test]
    fn go_125_rounding_and_minimum() {
        assert_eq!(procs_for(8, Some(0.5)), 2); // minimum of 2
        assert_eq!(procs_for(8, Some(2.1)), 3); // rounded up
        assert_eq!(procs_for(2, Some(6.0)), 2); // never above the CPU count
        assert_eq!(procs_for(1, Some(0.5)), 1);
        assert_eq!(procs_for(4, None), 4);
    }

    #[test]
    fn real_machine_is_sane() {
        let n = num_cpu();
        assert!(n >= 1);
        let d = default_procs();
        assert!(d >= 1 && d <= n);
    }
}
