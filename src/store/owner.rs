//! Who holds a reservation or writes a temporary blob file: a process identified well enough that
//! another process can tell whether it is still alive, so a killed save's leftovers are reclaimed
//! at once instead of after the reservation TTL.
//!
//! A process is named by its pid and start time (so a reused pid is not mistaken for the owner)
//! within a pid namespace of one kernel boot; the host name is kept for people reading it. Only a
//! process in the same boot and pid namespace can check it (`/proc/<pid>/stat`); any other owner,
//! for instance another host sharing a PostgreSQL index, is [`Liveness::Unknown`] and its
//! reservation falls back to the TTL.

use std::sync::OnceLock;

/// A process that owns a reservation or a temporary file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Host name, for display only.
    pub host: String,
    /// The kernel boot id, dashes removed.
    pub boot: String,
    /// The inode number of the owner's pid namespace.
    pub pid_namespace: u64,
    /// The process id inside that namespace.
    pub pid: u32,
    /// The process start time in clock ticks after boot (`/proc/<pid>/stat` field 22).
    pub start: u64,
}

/// Whether an owner is still running, as far as this process can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The owner is running.
    Alive,
    /// The owner has exited (or its pid now belongs to another process).
    Dead,
    /// The owner lives in another boot, host or pid namespace: only a timeout can tell.
    Unknown,
}

impl Owner {
    /// This process, or `None` where it cannot be identified (no `/proc`).
    pub fn current() -> Option<&'static Owner> {
        static CURRENT: OnceLock<Option<Owner>> = OnceLock::new();
        CURRENT.get_or_init(Self::probe_self).as_ref()
    }

    fn probe_self() -> Option<Owner> {
        let (boot, pid_namespace) = this_boot_and_namespace()?;
        let pid = std::process::id();
        let start = start_time(pid)?.0;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
            .unwrap_or_else(|| "localhost".to_string());
        Some(Owner {
            host,
            boot,
            pid_namespace,
            pid,
            start,
        })
    }

    /// The stored form: `host boot pidns pid start`.
    pub fn to_text(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.host, self.boot, self.pid_namespace, self.pid, self.start
        )
    }

    /// Parses [`Owner::to_text`]; `None` for anything else.
    pub fn parse(text: &str) -> Option<Owner> {
        let mut fields = text.split_whitespace();
        let owner = Owner {
            host: fields.next()?.to_string(),
            boot: fields.next()?.to_string(),
            pid_namespace: fields.next()?.parse().ok()?,
            pid: fields.next()?.parse().ok()?,
            start: fields.next()?.parse().ok()?,
        };
        fields.next().is_none().then_some(owner)
    }

    /// The form carried in a temporary file name (no host: a file system is not shared by
    /// processes that could check each other anyway): `boot_pidns_pid_start`.
    pub fn file_token(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.boot, self.pid_namespace, self.pid, self.start
        )
    }

    /// Parses the token [`Owner::file_token`] put at the start of `name`, after `prefix`.
    pub fn from_file_name(name: &str, prefix: &str) -> Option<Owner> {
        let token = name.strip_prefix(prefix)?.split('-').next()?;
        let mut fields = token.split('_');
        let owner = Owner {
            host: String::new(),
            boot: fields.next()?.to_string(),
            pid_namespace: fields.next()?.parse().ok()?,
            pid: fields.next()?.parse().ok()?,
            start: fields.next()?.parse().ok()?,
        };
        fields.next().is_none().then_some(owner)
    }

    /// Whether the owner still runs, checked from this process.
    pub fn liveness(&self) -> Liveness {
        let Some((boot, namespace)) = this_boot_and_namespace() else {
            return Liveness::Unknown;
        };
        if boot != self.boot || namespace != self.pid_namespace {
            return Liveness::Unknown;
        }
        match start_time(self.pid) {
            None => Liveness::Dead,
            Some((_, true)) => Liveness::Dead,
            Some((start, false)) if start != self.start => Liveness::Dead,
            Some(_) => Liveness::Alive,
        }
    }
}

/// Whether the owner stored as `text` (a row's `owner` column) is known to be dead.
pub fn is_dead(text: Option<&str>) -> bool {
    text.and_then(Owner::parse)
        .is_some_and(|o| o.liveness() == Liveness::Dead)
}

fn this_boot_and_namespace() -> Option<(String, u64)> {
    static IDS: OnceLock<Option<(String, u64)>> = OnceLock::new();
    IDS.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let boot: String = boot.trim().chars().filter(|c| *c != '-').collect();
        let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
        // "pid:[4026531836]"
        let ns = ns.to_str()?.strip_prefix("pid:[")?.strip_suffix(']')?;
        Some((boot, ns.parse().ok()?))
    })
    .clone()
}

/// A process's start time and whether it is a zombie (exited, not yet reaped); `None` if there
/// is no such process.
fn start_time(pid: u32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain anything, so fields are
    // counted from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); start time is field 22.
    let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
    Some((fields.get(19)?.parse().ok()?, zombie))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_round_trips() {
        let Some(me) = Owner::current() else {
            eprintln!("skipped: no /proc on this system");
            return;
        };
        assert_eq!(me.liveness(), Liveness::Alive);
        assert_eq!(Owner::parse(&me.to_text()).as_ref(), Some(me));
        let name = format!("blob-{}-abc.partial", me.file_token());
        let from_name = Owner::from_file_name(&name, "blob-").expect("token");
        assert_eq!((from_name.pid, from_name.start), (me.pid, me.start));
        // The same pid started at another time is a different (dead) process.
        let reused = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(reused.liveness(), Liveness::Dead);
        let elsewhere = Owner {
            boot: "0".repeat(32),
            ..me.clone()
        };
        assert_eq!(elsewhere.liveness(), Liveness::Unknown);
        for bad in ["", "h b 1 2", "h b x 2 3", "h b 1 2 3 4"] {
            assert_eq!(Owner::parse(bad), None, "{bad:?}");
        }
    }
}
