//! The arithmetic of segmented objects: an object larger than `SEGMENT_BYTES` is kept at the
//! edge as fixed-size segments, each under its own key, each filled by one ranged GET.
//!
//! Pure: byte ranges, keys and checks on plain values. What it owns: which segments a request
//! touches and which bytes of each it wants ([`Layout::pieces`]), the client's `Range` header
//! ([`RangeSpec::parse`], [`RangeSpec::resolve`]), the origin's `Content-Range`
//! ([`ContentRange::parse`]), the key of each segment ([`segment_key`]) and the check that a
//! segment belongs to the version of the object being served ([`Version::check_segment`]).
//! What it must not do: fetch, store or stream anything (that is `edge::segments`).
//!
//! A 65 MiB NAR with 4 MiB segments is 17 segments: 16 of 4 MiB and one of 1 MiB. A client's
//! `Range: bytes=4194000-4194400` touches segments 0 and 1 and wants the last 304 bytes of the
//! first and the first 97 of the second.

/// The default segment size: 32 MiB. A cold full read costs one Cache API lookup for the object
/// plus, per segment, one ranged GET and one Cache API store; a warm one, one lookup per segment.
pub const DEFAULT_SEGMENT_BYTES: u64 = 32 * 1024 * 1024;
/// The smallest segment size accepted (1 MiB): smaller ones multiply calls for nothing.
pub const MIN_SEGMENT_BYTES: u64 = 1024 * 1024;
/// The largest segment size accepted (128 MiB): a Worker has 128 MB of memory, and a request may
/// hold about one segment when its client reads slower than the edge cache stores.
pub const MAX_SEGMENT_BYTES: u64 = 128 * 1024 * 1024;

/// Header of an object's head entry (the entry under the object's own key when its bytes are
/// kept as segments): the segment size its segments were stored with.
pub const SEGMENT_BYTES_HEADER: &str = "x-segment-bytes";
/// Header of an object's head entry: the object's length (the entry itself has no body).
pub const OBJECT_LENGTH_HEADER: &str = "x-object-length";

/// An inclusive byte range `first..=last`, as HTTP writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never: a `ByteRange` holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Range` header value asking for exactly these bytes.
    pub fn header(&self) -> String {
        format!("bytes={}-{}", self.first, self.last)
    }

    /// The `Content-Range` of these bytes of an object of `total` bytes.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{total}", self.first, self.last)
    }
}

/// A client's `Range` header, as far as this Worker serves it: one range of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=first-` or `bytes=first-last`.
    From { first: u64, last: Option<u64> },
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

/// Why a `Range` cannot be served from an object of a given length: the answer is 416 with
/// `Content-Range: bytes */<total>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

impl RangeSpec {
    /// Parses a `Range` header. `None` for anything but one range of bytes (several ranges,
    /// another unit, garbage): HTTP lets a server ignore such a header and send the whole object.
    pub fn parse(header: &str) -> Option<RangeSpec> {
        let spec = header.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let digits = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let (first, last) = (first.trim(), last.trim());
        if first.is_empty() {
            return digits(last).map(RangeSpec::Suffix);
        }
        let first = digits(first)?;
        let last = match last {
            "" => None,
            last => Some(digits(last)?),
        };
        if last.is_some_and(|last| last < first) {
            return None;
        }
        Some(RangeSpec::From { first, last })
    }

    /// The bytes this asks for of an object of `total` bytes (a `last` past the end is cut to
    /// the end, as HTTP says).
    pub fn resolve(self, total: u64) -> Result<ByteRange, Unsatisfiable> {
        match self {
            RangeSpec::From { first, last } if first < total => Ok(ByteRange {
                first,
                last: last.map_or(total - 1, |last| last.min(total - 1)),
            }),
            RangeSpec::Suffix(n) if n > 0 && total > 0 => Ok(ByteRange {
                first: total.saturating_sub(n),
                last: total - 1,
            }),
            _ => Err(Unsatisfiable),
        }
    }

    /// The first byte asked for, when it is known without the object's length.
    pub fn first(self) -> Option<u64> {
        match self {
            RangeSpec::From { first, .. } => Some(first),
            RangeSpec::Suffix(_) => None,
        }
    }
}

/// The origin's `Content-Range` on a 206 (`bytes 0-99/1234`) or a 416 (`bytes */1234`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    /// `None` for `*` (a 416).
    pub range: Option<ByteRange>,
    /// `None` for `*` (length unknown).
    pub total: Option<u64>,
}

impl ContentRange {
    pub fn parse(header: &str) -> Option<ContentRange> {
        let rest = header.trim().strip_prefix("bytes ")?;
        let (range, total) = rest.split_once('/')?;
        let number = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let total = match total.trim() {
            "*" => None,
            t => Some(number(t)?),
        };
        let range = match range.trim() {
            "*" => None,
            r => {
                let (first, last) = r.split_once('-')?;
                let range = ByteRange {
                    first: number(first)?,
                    last: number(last)?,
                };
                if range.last < range.first || total.is_some_and(|t| range.last >= t) {
                    return None;
                }
                Some(range)
            }
        };
        Some(ContentRange { range, total })
    }
}

/// How an object of `total` bytes is cut into segments of `segment_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub total: u64,
    pub segment_bytes: u64,
}

/// One segment a request touches, and which of its bytes it wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub index: u64,
    /// The segment's bytes within the object.
    pub segment: ByteRange,
    /// The bytes wanted, relative to the segment's first byte.
    pub wanted: ByteRange,
}

impl Piece {
    /// Whether the whole segment is wanted.
    pub fn whole(&self) -> bool {
        self.wanted.first == 0 && self.wanted.len() == self.segment.len()
    }
}

impl Layout {
    /// Whether an object this long is kept as segments (else as one entry).
    pub fn segmented(&self) -> bool {
        self.total > self.segment_bytes
    }

    pub fn count(&self) -> u64 {
        self.total.div_ceil(self.segment_bytes)
    }

    /// The bytes of segment `index` (which must be below [`count`](Self::count)).
    pub fn segment(&self, index: u64) -> ByteRange {
        let first = index * self.segment_bytes;
        ByteRange {
            first,
            last: (first + self.segment_bytes).min(self.total) - 1,
        }
    }

    /// The segment holding byte `offset`.
    pub fn index_of(&self, offset: u64) -> u64 {
        offset / self.segment_bytes
    }

    /// The segments `range` touches, in order, with the bytes wanted of each.
    pub fn pieces(&self, range: ByteRange) -> Vec<Piece> {
        let last = range.last.min(self.total.saturating_sub(1));
        if self.total == 0 || range.first > last {
            return Vec::new();
        }
        (self.index_of(range.first)..=self.index_of(last))
            .map(|index| {
                let segment = self.segment(index);
                let first = range.first.max(segment.first);
                let end = last.min(segment.last);
                Piece {
                    index,
                    segment,
                    wanted: ByteRange {
                        first: first - segment.first,
                        last: end - segment.first,
                    },
                }
            })
            .collect()
    }
}

/// The version of an object being served: every segment must carry the same `ETag` and the
/// same total length, or it belongs to another upload and is never spliced in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub etag: String,
    pub total: u64,
}

/// Why a segment cannot be used for the version being served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SegmentMismatch {
    #[error("segment {index}: the origin answered {status}, not 206")]
    Status { index: u64, status: u16 },
    #[error("segment {index}: ETag differs from the object's first segment")]
    Etag { index: u64 },
    #[error("segment {index}: Content-Range {got:?} is not bytes {want:?} of {total}")]
    Range {
        index: u64,
        got: Option<String>,
        want: ByteRange,
        total: u64,
    },
    #[error("segment {index}: {got:?} bytes where {want} were expected")]
    Length {
        index: u64,
        got: Option<u64>,
        want: u64,
    },
}

impl Version {
    /// Checks the origin's answer to the ranged GET of segment `index`: a 206 with this
    /// version's `ETag` and exactly the segment's `Content-Range`.
    pub fn check_origin_segment(
        &self,
        layout: &Layout,
        index: u64,
        status: u16,
        etag: Option<&str>,
        content_range: Option<&str>,
    ) -> Result<(), SegmentMismatch> {
        if status == 412 {
            // `If-Match` failed: the object has another ETag now.
            return Err(SegmentMismatch::Etag { index });
        }
        if status != 206 {
            return Err(SegmentMismatch::Status { index, status });
        }
        if etag != Some(self.etag.as_str()) {
            return Err(SegmentMismatch::Etag { index });
        }
        let want = layout.segment(index);
        let got = content_range.and_then(ContentRange::parse);
        if got
            != Some(ContentRange {
                range: Some(want),
                total: Some(self.total),
            })
        {
            return Err(SegmentMismatch::Range {
                index,
                got: content_range.map(str::to_string),
                want,
                total: self.total,
            });
        }
        Ok(())
    }

    /// Checks a segment found at the edge: this version's `ETag` and the segment's length.
    pub fn check_stored_segment(
        &self,
        layout: &Layout,
        index: u64,
        etag: Option<&str>,
        content_length: Option<u64>,
    ) -> Result<(), SegmentMismatch> {
        if etag != Some(self.etag.as_str()) {
            return Err(SegmentMismatch::Etag { index });
        }
        let want = layout.segment(index).len();
        if content_length != Some(want) {
            return Err(SegmentMismatch::Length {
                index,
                got: content_length,
                want,
            });
        }
        Ok(())
    }
}

/// The edge cache key of segment `index` of the object at `object_url` (its own cache key,
/// without a query), for this version and segment size: segments of another upload (another
/// `ETag`) or another size never share a key.
pub fn segment_key(object_url: &str, etag: &str, segment_bytes: u64, index: u64) -> String {
    let mut tag = String::with_capacity(etag.len());
    for b in etag.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            tag.push(b as char);
        } else {
            tag.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{object_url}?segment={index}&size={segment_bytes}&etag={tag}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    #[test]
    fn a_65_mib_object_in_4_mib_segments() {
        let l = Layout {
            total: 65 * MIB,
            segment_bytes: 4 * MIB,
        };
        assert!(l.segmented());
        assert_eq!(l.count(), 17);
        assert_eq!(l.segment(0), r(0, 4 * MIB - 1));
        assert_eq!(l.segment(16), r(64 * MIB, 65 * MIB - 1));
        assert_eq!(l.segment(16).len(), MIB);
        // The whole object: every segment, whole.
        let all = l.pieces(r(0, 65 * MIB - 1));
        assert_eq!(all.len(), 17);
        assert!(all.iter().all(Piece::whole));
        assert_eq!(all.iter().map(|p| p.wanted.len()).sum::<u64>(), 65 * MIB);
    }

    #[test]
    fn ranges_touch_only_their_segments() {
        let l = Layout {
            total: 65 * MIB,
            segment_bytes: 4 * MIB,
        };
        // Inside one segment.
        let p = l.pieces(r(5 * MIB, 5 * MIB + 99));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].index, 1);
        assert_eq!(p[0].wanted, r(MIB, MIB + 99));
        assert!(!p[0].whole());
        // Across a boundary.
        let p = l.pieces(r(4 * MIB - 10, 4 * MIB + 9));
        assert_eq!(p.iter().map(|p| p.index).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(p[0].wanted, r(4 * MIB - 10, 4 * MIB - 1));
        assert_eq!(p[1].wanted, r(0, 9));
        // The last byte.
        let p = l.pieces(r(65 * MIB - 1, 65 * MIB - 1));
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].index, p[0].wanted), (16, r(MIB - 1, MIB - 1)));
        // A last byte past the end is cut; a first byte past it touches nothing.
        assert_eq!(l.pieces(r(65 * MIB - 1, 100 * MIB)).len(), 1);
        assert!(l.pieces(r(65 * MIB, 66 * MIB)).is_empty());
    }

    #[test]
    fn small_objects_are_one_entry() {
        for total in [0, 1, 4 * MIB] {
            let l = Layout {
                total,
                segment_bytes: 4 * MIB,
            };
            assert!(!l.segmented(), "{total}");
        }
        assert!(Layout {
            total: 4 * MIB + 1,
            segment_bytes: 4 * MIB
        }
        .segmented());
    }

    #[test]
    fn range_headers() {
        let from = |first, last| Some(RangeSpec::From { first, last });
        assert_eq!(RangeSpec::parse("bytes=0-99"), from(0, Some(99)));
        assert_eq!(RangeSpec::parse(" bytes=100- "), from(100, None));
        assert_eq!(RangeSpec::parse("bytes=-500"), Some(RangeSpec::Suffix(500)));
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=",
            "bytes=1-2-3",
            "bytes=99999999999999999999999-",
            "",
        ] {
            assert_eq!(RangeSpec::parse(ignored), None, "{ignored}");
        }
        let total = 1000;
        assert_eq!(from(0, Some(99)).unwrap().resolve(total), Ok(r(0, 99)));
        assert_eq!(
            from(990, Some(2000)).unwrap().resolve(total),
            Ok(r(990, 999))
        );
        assert_eq!(from(999, None).unwrap().resolve(total), Ok(r(999, 999)));
        assert_eq!(from(1000, None).unwrap().resolve(total), Err(Unsatisfiable));
        assert_eq!(RangeSpec::Suffix(10).resolve(total), Ok(r(990, 999)));
        assert_eq!(RangeSpec::Suffix(5000).resolve(total), Ok(r(0, 999)));
        assert_eq!(RangeSpec::Suffix(0).resolve(total), Err(Unsatisfiable));
        assert_eq!(from(0, None).unwrap().resolve(0), Err(Unsatisfiable));
        assert_eq!(r(5, 9).header(), "bytes=5-9");
        assert_eq!(r(5, 9).content_range(10), "bytes 5-9/10");
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            ContentRange::parse("bytes 0-99/1234"),
            Some(ContentRange {
                range: Some(r(0, 99)),
                total: Some(1234)
            })
        );
        assert_eq!(
            ContentRange::parse("bytes */1234"),
            Some(ContentRange {
                range: None,
                total: Some(1234)
            })
        );
        assert_eq!(
            ContentRange::parse("bytes 0-99/*"),
            Some(ContentRange {
                range: Some(r(0, 99)),
                total: None
            })
        );
        for bad in [
            "bytes 0-99/50",
            "bytes 9-1/50",
            "0-99/100",
            "bytes 0-99",
            "bytes x-1/2",
            "",
        ] {
            assert_eq!(ContentRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn segments_of_another_version_are_refused() {
        let l = Layout {
            total: 10 * MIB,
            segment_bytes: 4 * MIB,
        };
        let v = Version {
            etag: "\"abc\"".into(),
            total: 10 * MIB,
        };
        let cr = |i| l.segment(i).content_range(10 * MIB);
        assert_eq!(
            v.check_origin_segment(&l, 1, 206, Some("\"abc\""), Some(&cr(1))),
            Ok(())
        );
        assert_eq!(
            v.check_origin_segment(&l, 1, 206, Some("\"xyz\""), Some(&cr(1))),
            Err(SegmentMismatch::Etag { index: 1 })
        );
        assert!(matches!(
            v.check_origin_segment(&l, 1, 206, Some("\"abc\""), Some(&cr(2))),
            Err(SegmentMismatch::Range { index: 1, .. })
        ));
        assert!(matches!(
            v.check_origin_segment(
                &l,
                1,
                206,
                Some("\"abc\""),
                Some("bytes 4194304-8388607/99999999")
            ),
            Err(SegmentMismatch::Range { .. })
        ));
        assert_eq!(
            v.check_origin_segment(&l, 1, 200, Some("\"abc\""), None),
            Err(SegmentMismatch::Status {
                index: 1,
                status: 200
            })
        );
        assert_eq!(
            v.check_origin_segment(&l, 1, 412, None, None),
            Err(SegmentMismatch::Etag { index: 1 })
        );
        assert_eq!(
            v.check_stored_segment(&l, 2, Some("\"abc\""), Some(2 * MIB)),
            Ok(())
        );
        assert!(v
            .check_stored_segment(&l, 2, Some("\"abc\""), Some(4 * MIB))
            .is_err());
        assert!(v
            .check_stored_segment(&l, 2, Some("\"zzz\""), Some(2 * MIB))
            .is_err());
        assert!(v.check_stored_segment(&l, 2, None, None).is_err());
    }

    #[test]
    fn segment_keys_differ_by_version_size_and_index() {
        let url = "https://cache.example.com/nar/x.nar";
        let a = segment_key(url, "\"d41d8cd98f00b204e9800998ecf8427e\"", 4 * MIB, 3);
        assert_eq!(
            a,
            "https://cache.example.com/nar/x.nar?segment=3&size=4194304\
             &etag=%22d41d8cd98f00b204e9800998ecf8427e%22"
        );
        assert_ne!(
            a,
            segment_key(url, "\"d41d8cd98f00b204e9800998ecf8427f\"", 4 * MIB, 3)
        );
        assert_ne!(
            a,
            segment_key(url, "\"d41d8cd98f00b204e9800998ecf8427e\"", 8 * MIB, 3)
        );
        assert_ne!(
            a,
            segment_key(url, "\"d41d8cd98f00b204e9800998ecf8427e\"", 4 * MIB, 4)
        );
        // Whatever an ETag holds, the key stays one URL with no second query or fragment.
        let odd = segment_key(url, "W/\"a&b=c#d e\"", MIB, 0);
        assert!(!odd[url.len()..].contains(['#', ' ', '/']));
        assert_eq!(odd.matches('&').count(), 2);
    }
}
