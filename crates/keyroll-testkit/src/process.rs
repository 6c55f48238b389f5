//! What every throwaway server shares: free loopback ports, dropping root privileges to a
//! service account, a supervised child in its own process group (killed on drop and on the
//! test process's death), readiness polling with a deadline, and initialised data
//! directories cached as templates.

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::{Result, TestkitError};

/// The loopback address every server binds.
pub const LOOPBACK: &str = "127.0.0.1";

/// A TCP port on 127.0.0.1 that was free a moment ago. Servers retry with another port when
/// they lose the race for it.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind((LOOPBACK, 0)).map_err(TestkitError::io("binding 127.0.0.1:0"))?;
    Ok(l.local_addr()
        .map_err(TestkitError::io("reading the bound address"))?
        .port())
}

/// An unprivileged account to run a server as when the tests run as root (PostgreSQL and
/// MariaDB refuse to run as root).
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The first of `candidates` that exists, when running as root; `None` when not root (the
/// server then runs as the current user).
pub fn service_account(candidates: &[&str]) -> Result<Option<ServiceAccount>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    for name in candidates {
        if let Some(acct) = lookup_user(name) {
            return Ok(Some(acct));
        }
    }
    Err(TestkitError::NoServiceAccount(
        candidates.iter().map(|s| s.to_string()).collect(),
    ))
}

fn lookup_user(name: &str) -> Option<ServiceAccount> {
    let cname = CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live, correctly sized storage owned by this frame.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    Some(ServiceAccount {
        name: name.to_string(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// Gives `path` and everything below it to `acct` (no-op without an account).
pub fn chown_tree(path: &Path, acct: Option<&ServiceAccount>) -> Result<()> {
    let Some(acct) = acct else { return Ok(()) };
    let meta =
        fs::symlink_metadata(path).map_err(TestkitError::io(format!("stat {}", path.display())))?;
    std::os::unix::fs::lchown(path, Some(acct.uid), Some(acct.gid))
        .map_err(TestkitError::io(format!("chown {}", path.display())))?;
    if meta.is_dir() {
        for entry in
            fs::read_dir(path).map_err(TestkitError::io(format!("listing {}", path.display())))?
        {
            let entry = entry.map_err(TestkitError::io(format!("listing {}", path.display())))?;
            chown_tree(&entry.path(), Some(acct))?;
        }
    }
    Ok(())
}

/// A fresh private temporary directory owned by `acct` (mode 0700).
pub fn private_dir(prefix: &str, acct: Option<&ServiceAccount>) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(TestkitError::io("creating a temporary directory"))?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
        .map_err(TestkitError::io("chmod of the temporary directory"))?;
    chown_tree(dir.path(), acct)?;
    Ok(dir)
}

/// Writes `contents` to `path`, owned by `acct`, with `mode`.
pub fn write_private(
    path: &Path,
    contents: &[u8],
    mode: u32,
    acct: Option<&ServiceAccount>,
) -> Result<()> {
    fs::write(path, contents).map_err(TestkitError::io(format!("writing {}", path.display())))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(TestkitError::io(format!("chmod {}", path.display())))?;
    chown_tree(path, acct)
}

/// Runs `cmd` to completion as `acct`, failing with its output when it fails.
pub fn run_as(what: &str, mut cmd: Command, acct: Option<&ServiceAccount>) -> Result<()> {
    if let Some(a) = acct {
        cmd.uid(a.uid).gid(a.gid);
    }
    cmd.stdin(Stdio::null());
    let out = cmd
        .output()
        .map_err(TestkitError::io(format!("starting {what}")))?;
    if !out.status.success() {
        return Err(TestkitError::CommandFailed {
            what: what.to_string(),
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(())
}

/// A random lowercase-hex string from the OS (for throwaway server passwords).
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(TestkitError::io("reading /dev/urandom"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The last `lines` lines of a log file (for error messages).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Servers are spawned from one thread that lives as long as the process: the parent-death
/// signal fires when the *spawning thread* exits, so spawning from a short-lived test thread
/// would kill a server another test still uses.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("keyroll-testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| panic!("cannot start the testkit spawner thread: {e}"));
        Mutex::new(tx)
    })
}

/// A server process in its own process group, stopped when dropped.
pub struct ServerProcess {
    what: String,
    child: Child,
    log: PathBuf,
    stop_signal: i32,
    stopped: bool,
}

impl ServerProcess {
    /// Starts `cmd` as `acct` in a new process group, stdout and stderr appended to `log`. The
    /// child gets SIGKILL if this process dies; `stop_signal` is what [`Self::stop`] sends
    /// first (e.g. SIGQUIT for PostgreSQL's immediate shutdown).
    pub fn spawn(
        what: &str,
        mut cmd: Command,
        acct: Option<&ServiceAccount>,
        log: &Path,
        stop_signal: i32,
    ) -> Result<Self> {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(TestkitError::io(format!("opening {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(TestkitError::io(format!("opening {}", log.display())))?;
        if let Some(a) = acct {
            cmd.uid(a.uid).gid(a.gid);
        }
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let (tx, rx) = mpsc::channel();
        spawner()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((cmd, tx))
            .map_err(|_| TestkitError::Io {
                context: format!("spawning {what}"),
                source: std::io::Error::other("the spawner thread is gone"),
            })?;
        let child = rx
            .recv()
            .map_err(|_| TestkitError::Io {
                context: format!("spawning {what}"),
                source: std::io::Error::other("the spawner thread is gone"),
            })?
            .map_err(TestkitError::io(format!("spawning {what}")))?;
        Ok(ServerProcess {
            what: what.to_string(),
            child,
            log: log.to_path_buf(),
            stop_signal,
            stopped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `ready` with a short backoff until it returns true, the child exits, or
    /// `deadline` passes. Returns how long it took.
    pub fn wait_ready(
        &mut self,
        deadline: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<Duration> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            if ready() {
                return Ok(start.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.stopped = true;
                return Err(TestkitError::Exited {
                    what: self.what.clone(),
                    status: status.to_string(),
                    log: log_tail(&self.log, 30),
                });
            }
            if start.elapsed() >= deadline {
                return Err(TestkitError::NotReady {
                    what: self.what.clone(),
                    waited_ms: start.elapsed().as_millis(),
                    log: log_tail(&self.log, 30),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(25));
        }
    }

    /// Stops the server: the stop signal to the leader, up to 5 s for it to exit, then
    /// SIGKILL to the whole group (anything left behind included).
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: plain syscalls on a process group we created.
        unsafe {
            libc::kill(pgid, self.stop_signal);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut pause = Duration::from_millis(1);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
            }
        }
        // SAFETY: as above; ESRCH (group already gone) is fine.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The directory holding cached templates for this user.
fn templates_root() -> PathBuf {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("keyroll-testkit-{uid}"))
}

/// An initialised data directory cached under `key`: built once by `build` (which fills the
/// directory it is given) and then reused. Concurrent builders race; the first atomic rename
/// wins and the others discard their copy.
pub fn template(key: &str, build: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let root = templates_root();
    let done = root.join(key);
    if done.join(".complete").exists() {
        return Ok(done);
    }
    fs::create_dir_all(&root).map_err(TestkitError::io(format!("creating {}", root.display())))?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
        .map_err(TestkitError::io(format!("chmod {}", root.display())))?;
    let staging = root.join(format!(
        ".build-{key}-{}-{}",
        std::process::id(),
        random_hex(4)?
    ));
    fs::create_dir(&staging)
        .map_err(TestkitError::io(format!("creating {}", staging.display())))?;
    let built = build(&staging).and_then(|()| {
        fs::write(staging.join(".complete"), b"")
            .map_err(TestkitError::io("marking the template complete"))
    });
    if let Err(e) = built {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    if fs::rename(&staging, &done).is_err() {
        // Somebody else finished first (or a stale incomplete copy is in the way).
        let _ = fs::remove_dir_all(&staging);
        if !done.join(".complete").exists() {
            let _ = fs::remove_dir_all(&done);
            return Err(TestkitError::Io {
                context: format!("installing the template {}", done.display()),
                source: std::io::Error::other("a stale incomplete template was removed; retry"),
            });
        }
    }
    Ok(done)
}

/// Copies `src` to `dst` (which must not exist), preserving modes and ownership.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let mut cmd = Command::new("cp");
    cmd.arg("-a").arg(src).arg(dst);
    run_as(
        &format!("cp -a {} {}", src.display(), dst.display()),
        cmd,
        None,
    )
}

/// Finds `name` in `dir` (overridable with the environment variable `env`).
pub fn binary(
    env: &'static str,
    default_dir: &str,
    name: &str,
    what: &'static str,
    package: &'static str,
) -> Result<PathBuf> {
    let dir = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default_dir));
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(TestkitError::MissingBinary {
            what,
            path,
            package,
            env,
        })
    }
}

/// Runs `start` again (at most three attempts in all) while it fails because another process
/// took the chosen free port before the server bound it.
pub(crate) fn retry_on_port_race<T>(mut start: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempt = 1;
    loop {
        match start() {
            Err(e) if attempt < 3 && lost_port_race(&e) => attempt += 1,
            other => return other,
        }
    }
}

/// Whether `err` says the port was taken between choosing and binding it.
fn lost_port_race(err: &TestkitError) -> bool {
    match err {
        TestkitError::Exited { log, .. } | TestkitError::NotReady { log, .. } => {
            log.contains("Address already in use") || log.contains("could not bind")
        }
        _ => false,
    }
}
