//! Programs run as an operator runs them (our binaries, the supervisor,
//! Prometheus), with everything they print collected for the assertions;
//! where our binaries are, and the processes and ports around them.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child process whose stdout and stderr are collected line by line.
pub struct Process {
    pub child: Child,
    /// Started as the leader of its own process group, killed as a group.
    group: bool,
    name: String,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Process {
    /// Starts `program` with `args` and `env` added to this process's environment.
    pub fn start(program: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut command = Command::new(program);
        command.args(args).env("NO_COLOR", "1").stdout(Stdio::piped()).stderr(Stdio::piped());
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        Self::spawn(command)
    }

    /// Starts `command` in a process group of its own: dropping it kills the
    /// group (a supervisor and what it started), not only the leader.
    pub fn spawn_group(mut command: Command) -> Self {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        let mut process = Self::spawn(command);
        process.group = true;
        process
    }

    /// Starts `command` (its stdout and stderr are taken over).
    pub fn spawn(mut command: Command) -> Self {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let name = command.get_program().to_string_lossy().into_owned();
        let mut child = command.spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().expect("piped"));
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("piped"));
        let readers = [stdout, stderr]
            .into_iter()
            .map(|stream| {
                let output = output.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let mut all = output.lock().unwrap_or_else(|e| e.into_inner());
                        all.push_str(&line);
                        all.push('\n');
                    }
                })
            })
            .collect();
        Self { child, group: false, name, output, readers }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits up to `timeout` for a printed line containing `needle`; that line.
    pub async fn line_with(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.output().lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "{} printed no {needle:?} within {timeout:?}:\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `127.0.0.1:PORT` a line containing `needle` names, once printed.
    pub async fn address_after(&self, needle: &str, timeout: Duration) -> String {
        let line = self.line_with(needle, timeout).await;
        let port: String = line
            .split("127.0.0.1:")
            .nth(1)
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        format!("127.0.0.1:{port}")
    }

    /// Sends `signal` (e.g. `"TERM"`, `"KILL"`) to the process.
    pub fn signal(&self, signal: &str) {
        signal_pid(self.pid(), signal);
    }

    /// Waits up to `timeout` for the process to exit; its status. What it
    /// printed last is in [`output`](Self::output) once this returns.
    pub async fn exit_within(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // The pipes end with the process (or with the last child that inherited them).
                let drained = Instant::now() + Duration::from_secs(5);
                while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < drained {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not exit within {timeout:?}:\n{}", self.name, self.output());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.group {
            // Also after the leader exited: what it started may live on.
            let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{}", self.pid())).status();
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `target/<profile>/<name>`: a binary of the workspace, beside this test
/// executable (`make test` builds them before the tests).
pub fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>").join(name)
}

/// Sends `signal` to `pid` with kill(1).
pub fn signal_pid(pid: u32, signal: &str) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("kill(1)");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A TCP port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// Every live descendant of `pid` as `(pid, command name)` (Linux `/proc`).
pub fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // pid (comm) state ppid …; comm may hold spaces, so read after the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = stat[open + 1..close].to_owned();
        let mut rest = stat[close + 1..].split_whitespace();
        let (Some(state), Some(ppid)) = (rest.next(), rest.next().and_then(|p| p.parse::<u32>().ok())) else {
            continue;
        };
        if state != "Z" {
            parents.push((child, ppid, comm));
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (child, ppid, comm) in &parents {
            if *ppid == parent {
                found.push((*child, comm.clone()));
                frontier.push(*child);
            }
        }
    }
    found
}
