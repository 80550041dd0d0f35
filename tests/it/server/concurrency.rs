//! Many clients at once, the concurrent-upload cap, and expiry of abandoned uploads.

use std::io::Read;
use std::sync::mpsc;
use std::thread;

use super::{Srv, bytes, put_blob, version};
use crate::support::upload_in_progress;

#[test]
fn sixteen_clients_saving_one_key_make_exactly_one_entry() {
    let s = Srv::start();
    let token = s.token();
    let v = version(1);
    let replies: Vec<(u16, String)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..16u8)
            .map(|i| {
                let (s, token, v) = (&s, &token, &v);
                scope.spawn(move || {
                    let reply = s.save_v2(token, "same-key", v, &bytes(20_000, i));
                    (reply.status, reply.text())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let saved = replies.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(saved, 1, "{replies:?}");
    for (status, text) in replies.iter().filter(|(status, _)| *status != 200) {
        assert_eq!(*status, 409, "{text}");
        assert!(
            text.contains("another job may be creating this cache"),
            "{text}"
        );
    }
    assert_eq!(s.h.entry_count(), 1);
}

#[test]
fn fifty_mixed_saves_and_restores_of_distinct_keys() {
    let s = Srv::start();
    let token = s.token();
    let v = version(2);
    for i in 0..25u8 {
        assert_eq!(
            s.save_v2(&token, &format!("pre-{i}"), &v, &bytes(5000, i))
                .status,
            200
        );
    }
    thread::scope(|scope| {
        for i in 0..50u8 {
            let (s, token, v) = (&s, &token, &v);
            scope.spawn(move || {
                if i % 2 == 0 {
                    let data = bytes(8000, i);
                    if i % 4 == 0 {
                        assert_eq!(s.save_v1(token, &format!("new-{i}"), v, &data), 204);
                    } else {
                        let reply = s.save_v2(token, &format!("new-{i}"), v, &data);
                        assert_eq!(reply.status, 200, "{}", reply.text());
                    }
                } else {
                    let j = i / 2;
                    let got = s.restore_v2(token, &[&format!("pre-{j}")], v);
                    assert_eq!(got, Some(bytes(5000, j)));
                }
            });
        }
    });
    assert_eq!(s.h.entry_count(), 50);
}

/// A request body that blocks until the test says so.
struct HeldBody {
    first: Option<Vec<u8>>,
    release: mpsc::Receiver<()>,
}

impl Read for HeldBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(first) = self.first.take() {
            buf[..first.len()].copy_from_slice(&first);
            return Ok(first.len());
        }
        let _ = self.release.recv();
        Ok(0)
    }
}

#[test]
fn uploads_over_the_concurrency_cap_get_429() {
    let s = Srv::with(|c| c.max_concurrent_uploads = 1);
    let token = s.token();
    let v = version(3);
    let held_url = s.create(&token, "held", &v).expect("created");
    let other_url = s.create(&token, "other", &v).expect("created");
    let (release, wait) = mpsc::channel();
    let holder = thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut body = HeldBody {
            first: Some(b"first bytes".to_vec()),
            release: wait,
        };
        let reply = agent
            .put(&held_url)
            .header("x-ms-blob-type", "BlockBlob")
            .send(ureq::SendBody::from_reader(&mut body))
            .expect("held upload");
        reply.status().as_u16()
    });
    // The held request owns the only slot once its bytes are being written.
    let (staging, store) = (s.h.dir.path().join("staging"), s.h.dir.path().join("store"));
    while !upload_in_progress(&staging, &store) {
        thread::yield_now();
    }
    let refused = put_blob(&other_url, b"second");
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(
        refused.text().contains("too many uploads"),
        "{}",
        refused.text()
    );
    release.send(()).expect("release");
    assert_eq!(holder.join().expect("holder"), 201);
    assert_eq!(
        put_blob(&other_url, b"second").status,
        201,
        "the slot is free again"
    );
}

#[test]
fn abandoned_uploads_expire_and_their_key_can_be_saved() {
    let s = Srv::start();
    let token = s.token();
    let v = version(4);
    let url = s.create(&token, "abandoned", &v).expect("created");
    assert_eq!(put_blob(&url, b"half").status, 201);
    assert_eq!(s.server.expire_uploads().expect("expire"), 0, "not yet");
    s.h.clock.advance(2 * 3600 * 1000);
    assert_eq!(s.server.expire_uploads().expect("expire"), 1);
    assert_eq!(s.staged_uploads(), 0);
    assert_eq!(s.h.entry_count(), 0);
    let token = s.token();
    assert_eq!(s.save_v2(&token, "abandoned", &v, b"whole").status, 200);
}
