//! The S3 endpoint's benchmark (BENCHMARKS.md, "Multipart push through the S3 endpoint"),
//! an ignored test run by name; it prints figures and asserts no speed.

mod s3_support;
mod support;

use std::fs;
use std::io::Write;
use std::path::Path;

use nix_spaces_cache::token::Scope;
use s3_support::{curl_at, header_value, xml_text, Secrets, BUCKET, MIB};
use support::{temp_dir, S3Origin, Worker};

/// The pids of the workerd processes serving `worker` (in its process group).
fn workerd_pids(worker: &Worker) -> Vec<u32> {
    let group = worker.process.pid().to_string();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name: state, ppid, pgrp, ...
        let pgrp = stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .nth(2);
        if comm.trim() == "workerd" && pgrp == Some(group.as_str()) {
            pids.push(pid);
        }
    }
    pids
}

fn status_kib(pids: &[u32], field: &str) -> u64 {
    pids.iter()
        .map(|pid| {
            fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{field}:")))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// One multipart upload of `file` in `part` byte parts to `base`: create, parts one after the
/// other, complete. Returns the seconds it took.
fn multipart_once(
    base: &str,
    cred: &(String, String),
    target: &str,
    file: &Path,
    part: u64,
) -> f64 {
    let started = std::time::Instant::now();
    let (status, _, body) = curl_at(base, cred, "POST", &format!("{target}?uploads="), &[]);
    assert_eq!(status, 200, "create: {body}");
    let id = xml_text(&body, "UploadId").unwrap();
    let len = fs::metadata(file).unwrap().len();
    let parts = temp_dir("bench-parts-");
    let mut xml = String::from("<CompleteMultipartUpload>");
    let mut from = 0;
    let mut n = 1;
    let mut data = fs::File::open(file).unwrap();
    while from < len {
        let size = part.min(len - from);
        let piece = parts.path().join(format!("{n}"));
        let mut out = fs::File::create(&piece).unwrap();
        std::io::copy(&mut std::io::Read::take(&mut data, size), &mut out).unwrap();
        drop(out);
        let (status, headers, body) = curl_at(
            base,
            cred,
            "PUT",
            &format!("{target}?partNumber={n}&uploadId={id}"),
            // No wait for `100 Continue`: curl would wait up to a second for a `100` that
            // the Worker's local runtime does not send, which times curl, not the Worker.
            &[
                "--expect100-timeout",
                "0.001",
                "-T",
                piece.to_str().unwrap(),
            ],
        );
        assert_eq!(status, 200, "part {n}: {body}");
        let etag = header_value(&headers, "etag").unwrap();
        xml.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
        fs::remove_file(&piece).unwrap();
        from += size;
        n += 1;
    }
    xml.push_str("</CompleteMultipartUpload>");
    let (status, _, body) = curl_at(
        base,
        cred,
        "POST",
        &format!("{target}?uploadId={id}"),
        &["-H", "content-type: application/xml", "--data-binary", &xml],
    );
    assert_eq!(status, 200, "complete: {body}");
    started.elapsed().as_secs_f64()
}

/// The figure of BENCHMARKS.md ("Multipart push through the S3 endpoint"): a NAR of
/// `BENCH_S3_MIB` MiB (256) pushed in 64 MiB parts with curl, straight to s3s-fs and through
/// the Worker, alternately, `BENCH_S3_ROUNDS` (3) times each; MB/s of each run, the ratio of
/// the medians, and the workerd process's resident memory idle and at its peak. Prints, never
/// asserts a speed. Splitting a part into its file is timed for both sides alike.
///
///     cargo test --test bench_s3 bench_multipart -- --ignored --nocapture
#[test]
#[ignore = "a benchmark: run it by name with --ignored --nocapture"]
fn bench_multipart_through_the_worker_against_straight_to_s3s_fs() {
    let env_u64 = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mib = env_u64("BENCH_S3_MIB", 256);
    let rounds = env_u64("BENCH_S3_ROUNDS", 3);
    let part = 64 * MIB;
    let secrets = Secrets::new();
    let bucket = temp_dir("bench-bucket-");
    let origin = S3Origin::start(bucket.path(), BUCKET);
    let direct = format!("http://127.0.0.1:{}", origin.direct_port);
    // The Worker talks to s3s-fs straight, as the direct client does (no counting proxy).
    let mut base = origin.bindings();
    base.retain(|(n, _)| n != "SPACES_ENDPOINT");
    base.push(("SPACES_ENDPOINT".into(), direct.clone()));
    let mut bindings = secrets.bindings(base);
    bindings.retain(|(n, _)| n != "MAX_UPLOAD_BYTES");
    let worker = Worker::start(&bindings);
    let pids = workerd_pids(&worker);
    assert!(!pids.is_empty(), "no workerd process found");
    let cred = secrets.credential(Scope::Write, 3600);
    let s3s = (origin.access_key.clone(), origin.secret_key.clone());
    let dir = temp_dir("bench-nar-");
    let file = dir.path().join("nar");
    {
        let mut f = fs::File::create(&file).unwrap();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut buf = vec![0u8; MIB as usize];
        for _ in 0..mib {
            for b in buf.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            f.write_all(&buf).unwrap();
        }
    }
    let bytes = (mib * MIB) as f64;
    let target = format!("/{BUCKET}/nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar");
    // Warm-up: one small upload each way (the Worker's first request makes its isolate).
    let small = dir.path().join("small");
    fs::write(&small, vec![7u8; MIB as usize]).unwrap();
    multipart_once(&direct, &s3s, &target, &small, part);
    multipart_once(&worker.url(), &cred, &target, &small, part);
    let idle_kib = status_kib(&pids, "VmRSS");
    let (mut straight, mut through) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let a = multipart_once(&direct, &s3s, &target, &file, part);
        let b = multipart_once(&worker.url(), &cred, &target, &file, part);
        straight.push(bytes / a / 1e6);
        through.push(bytes / b / 1e6);
        eprintln!(
            "round {}: straight {:.0} MB/s, through the Worker {:.0} MB/s",
            round + 1,
            straight[round as usize],
            through[round as usize]
        );
    }
    let stored = fs::metadata(
        bucket
            .path()
            .join("nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar"),
    )
    .unwrap()
    .len();
    assert_eq!(stored, mib * MIB, "the upload arrived whole");
    let peak_kib = status_kib(&pids, "VmHWM");
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (s_runs, t_runs) = (fmt(&straight), fmt(&through));
    let (s, t) = (median(&mut straight), median(&mut through));
    println!("| NAR | parts | straight to s3s-fs MB/s (runs) | through the Worker MB/s (runs) | Worker / straight | workerd RSS idle / peak |");
    println!("|---|---|---:|---:|---:|---:|");
    println!(
        "| {mib} MiB | {} × 64 MiB | {s:.0} ({s_runs}) | {t:.0} ({t_runs}) | {:.2} | {} / {} MiB |",
        mib.div_ceil(64),
        t / s,
        idle_kib / 1024,
        peak_kib / 1024
    );
}
