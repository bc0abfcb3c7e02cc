//! How [`RedbStore`](super::RedbStore) turns a record or change-feed entry into bytes and back.
//!
//! # Format
//!
//! A value written by this build is one format byte, [`BINARY_V1`], a CRC-32 (IEEE, little
//! endian) of the rest, and the value as MessagePack with named fields (`rmp-serde`'s struct
//! map). MessagePack is self-describing, so every serde attribute of the model round-trips
//! (`skip_serializing_if`, internally and adjacently tagged enums), which the non-self-describing
//! formats (postcard, bincode) cannot do without a second set of types; and decoding it is much
//! cheaper than JSON: no quoting or escapes to scan, lengths up front. The checksum is checked on
//! every read, so a damaged record is refused even when redb's whole-file check on open is off.
//!
//! Files written before this format (schema version 1) hold JSON, which always starts with `{`;
//! it is still read, so existing data files keep working, and each record moves to the binary
//! format the next time it is written.
//!
//! Decoding never trusts a length it has not seen the bytes for: a string or byte length past the
//! end of the input is an error before anything is allocated, and sequence and map sizes only
//! pre-allocate what serde's cautious size hint allows (at most 1 MiB).

use serde::{Deserialize, Serialize};

/// The format byte of a MessagePack value with a CRC-32.
pub(crate) const BINARY_V1: u8 = 0x01;

/// The first byte of every JSON value this crate ever stored (an object).
const JSON_START: u8 = b'{';

/// The format byte and the checksum.
const HEADER: usize = 5;

/// Why stored bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DecodeError {
    /// Nothing is stored.
    #[error("empty value")]
    Empty,
    /// The first byte names no format this build knows.
    #[error("unknown value format {0:#04x}")]
    UnknownFormat(u8),
    /// Shorter than the format byte and the checksum.
    #[error("truncated value: {0} bytes, shorter than its {HEADER}-byte header")]
    Truncated(usize),
    /// The bytes are not the ones that were written.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The checksum stored with the value.
        stored: u32,
        /// The checksum of the bytes as read.
        computed: u32,
    },
    /// The checksum holds, but the MessagePack is not a value of the expected type.
    #[error("undecodable binary value")]
    Binary(#[source] rmp_serde::decode::Error),
    /// A JSON value of an older file that is not a value of the expected type.
    #[error("undecodable JSON value")]
    Json(#[source] serde_json::Error),
}

/// Encodes `value` in the current format.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    let mut out = Vec::with_capacity(512);
    out.push(BINARY_V1);
    out.extend_from_slice(&[0; HEADER - 1]);
    value.serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())?;
    let crc = crc32fast::hash(&out[HEADER..]);
    out[1..HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decodes a value in the current format or, from an older file, JSON.
pub(crate) fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, DecodeError> {
    match *bytes.first().ok_or(DecodeError::Empty)? {
        BINARY_V1 => {
            let (header, body) = bytes
                .split_first_chunk::<HEADER>()
                .ok_or(DecodeError::Truncated(bytes.len()))?;
            let stored = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
            let computed = crc32fast::hash(body);
            if stored != computed {
                return Err(DecodeError::Checksum { stored, computed });
            }
            rmp_serde::from_slice(body).map_err(DecodeError::Binary)
        }
        JSON_START => serde_json::from_slice(bytes).map_err(DecodeError::Json),
        other => Err(DecodeError::UnknownFormat(other)),
    }
}

/// An error and its causes, `: `-separated: the reason of a [`StoreError::Corrupt`](super::StoreError).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        ApiDefinition, App, Authorization, BackendId, BackendKind, BackendService,
        FunctionDefinition, Group, GroupId, HttpDefinition, MockDefinition, Stage, StageDefinition,
        VpcAccess,
    };
    use crate::store::{Change, Deployment, Entity, Key, Publication, Versioned};

    fn api() -> ApiDefinition {
        let mut api = ApiDefinition::new(
            GroupId::generate(),
            "getUser",
            "GET",
            "/users/[id]",
            BackendId::generate(),
        )
        .unwrap();
        api.description = Some("with \"quotes\", ünïcode and \n newlines".into());
        api
    }

    /// One record of every kind, with optional fields both set and unset.
    fn every_kind() -> Vec<Entity> {
        let api = api();
        let mut backend = BackendService::new("mock_svc", BackendKind::Mock).unwrap();
        backend.stages.insert(
            Stage::TEST,
            StageDefinition::Mock(MockDefinition {
                status: 201,
                headers: [("x-a".to_owned(), "b".to_owned())].into_iter().collect(),
                body: "canned".into(),
            }),
        );
        let mut function = BackendService::new("fn_svc", BackendKind::FunctionCompute).unwrap();
        function.stages.insert(
            Stage::RELEASE,
            StageDefinition::FunctionCompute(FunctionDefinition::Http {
                url: "https://fc.example".into(),
                path: None,
            }),
        );
        let mut http = BackendService::new("http_svc", BackendKind::Http).unwrap();
        http.stages.insert(
            Stage::PRE,
            StageDefinition::Http(HttpDefinition::new("http://127.0.0.1:1")),
        );
        let app = App::new("mobile_app").unwrap();
        use crate::policy::PolicySpec;
        let mut t = crate::policy::Throttling::new(crate::policy::ThrottleUnit::Minute, 100);
        t.app_default = Some(5);
        t.special_apps.push(crate::policy::SpecialApp {
            app_id: app.id.clone(),
            limit: 50,
        });
        let throttle = crate::policy::Policy::new("per_minute", PolicySpec::Throttling(t)).unwrap();
        let throttle_id = throttle.id.clone();
        vec![
            Entity::Backend(backend),
            Entity::Backend(function),
            Entity::Backend(http),
            Entity::Group(Group::new("shop_api").unwrap()),
            Entity::Api(api.clone()),
            Entity::Deployment(Deployment {
                api_id: api.id.clone(),
                stage: Stage::RELEASE,
                version: "20260101000000000".into(),
                description: Some("first".into()),
                deployed_at: jiff::Timestamp::from_millisecond(1_767_225_600_123).unwrap(),
                snapshot: api.clone(),
            }),
            Entity::Publication(Publication {
                api_id: api.id.clone(),
                stage: Stage::RELEASE,
                version: "20260101000000000".into(),
            }),
            Entity::Authorization(Authorization {
                app_id: app.id.clone(),
                api_id: api.id,
                stage: Stage::TEST,
                expires_at: Some(jiff::Timestamp::from_second(1_900_000_000).unwrap()),
                created_at: jiff::Timestamp::UNIX_EPOCH,
            }),
            Entity::Policy(throttle),
            Entity::Policy(
                crate::policy::Policy::new(
                    "office_only",
                    PolicySpec::IpControl(crate::policy::IpControl {
                        mode: crate::policy::IpMode::Allow,
                        rules: vec![
                            crate::policy::IpRule::parse("10.0.0.0/8", Some(app.id.clone()))
                                .unwrap(),
                            crate::policy::IpRule::parse("2001:db8::/32", None).unwrap(),
                        ],
                    }),
                )
                .unwrap(),
            ),
            Entity::Policy(
                crate::policy::Policy::new(
                    "web_app",
                    PolicySpec::Cors(crate::policy::Cors::new(["https://*.example.com"])),
                )
                .unwrap(),
            ),
            Entity::Policy(
                crate::policy::Policy::new(
                    "backend_key",
                    PolicySpec::BackendSignature(crate::policy::BackendSignature {
                        key: "DemoKey1".into(),
                        secret: "DemoSecret1".into(),
                    }),
                )
                .unwrap(),
            ),
            Entity::PolicyBinding(crate::policy::PolicyBinding {
                policy_id: throttle_id,
                api_id: crate::model::ApiId::generate(),
                stage: Stage::PRE,
            }),
            Entity::App(app),
            Entity::VpcAccess(VpcAccess::new("vpc_a", "vpc-1", "i-1", 8080, None).unwrap()),
            Entity::DomainCertificate(crate::model::DomainCertificate {
                group_id: crate::model::GroupId::generate(),
                domain: "api.example.com".into(),
                certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                    .into(),
                private_key: "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"
                    .into(),
                dns_names: vec!["api.example.com".into()],
                not_before: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
                not_after: jiff::Timestamp::from_second(1_900_000_000).unwrap(),
                sha256_fingerprint: "ab".repeat(32),
                updated_at: jiff::Timestamp::UNIX_EPOCH,
            }),
        ]
    }

    #[test]
    fn every_entity_kind_round_trips() {
        for (i, entity) in every_kind().into_iter().enumerate() {
            let record = Versioned {
                value: entity,
                version: 7 + i as u64,
            };
            let bytes = encode(&record).unwrap();
            assert_eq!(bytes[0], BINARY_V1);
            let back: Versioned<Entity> = decode(&bytes).unwrap();
            assert_eq!(back, record, "{:?}", record.value.key());
            // The change feed's entries too, with and without a value.
            let change = Change {
                revision: 3,
                key: record.value.key(),
                value: Some(record.clone()),
            };
            assert_eq!(decode::<Change>(&encode(&change).unwrap()).unwrap(), change);
        }
        let delete = Change {
            revision: 4,
            key: Key::group(&GroupId::generate()),
            value: None,
        };
        assert_eq!(decode::<Change>(&encode(&delete).unwrap()).unwrap(), delete);
    }

    #[test]
    fn json_of_older_files_is_still_read() {
        for entity in every_kind() {
            let record = Versioned {
                value: entity,
                version: 1,
            };
            let json = serde_json::to_vec(&record).unwrap();
            assert_eq!(decode::<Versioned<Entity>>(&json).unwrap(), record);
        }
    }

    #[test]
    fn binary_is_smaller_than_json() {
        let record = Versioned {
            value: Entity::Api(api()),
            version: 1,
        };
        let json = serde_json::to_vec(&record).unwrap().len();
        let binary = encode(&record).unwrap().len();
        assert!(binary < json, "binary {binary} bytes, JSON {json}");
    }

    fn record_bytes() -> Vec<u8> {
        encode(&Versioned {
            value: Entity::Api(api()),
            version: 1,
        })
        .unwrap()
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let bytes = record_bytes();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                assert!(
                    decode::<Versioned<Entity>>(&damaged).is_err(),
                    "flip of bit {bit} at {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = record_bytes();
        for len in 0..bytes.len() {
            let err = decode::<Versioned<Entity>>(&bytes[..len]).unwrap_err();
            match len {
                0 => assert!(matches!(err, DecodeError::Empty)),
                1..HEADER => assert!(matches!(err, DecodeError::Truncated(n) if n == len)),
                _ => assert!(matches!(err, DecodeError::Checksum { .. })),
            }
        }
    }

    /// Sealed with a valid checksum, so that the decoder itself has to cope.
    fn sealed(body: &[u8]) -> Vec<u8> {
        let mut out = vec![BINARY_V1];
        out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn malformed_messagepack_with_a_valid_checksum_is_an_error() {
        let good = record_bytes();
        // Every prefix of a valid body, checksummed: truncated MessagePack.
        for len in 0..good.len() - HEADER {
            let bytes = sealed(&good[HEADER..HEADER + len]);
            assert!(
                matches!(
                    decode::<Versioned<Entity>>(&bytes),
                    Err(DecodeError::Binary(_))
                ),
                "prefix of {len} bytes"
            );
        }
        // Not a map, a map of the wrong shape, an unknown kind.
        for body in [
            &[0xc0][..],               // nil
            &[0x93, 0x01, 0x02, 0x03], // [1, 2, 3]
            &[0x81, 0xa1, b'x', 0x01], // {"x": 1}
        ] {
            assert!(matches!(
                decode::<Versioned<Entity>>(&sealed(body)),
                Err(DecodeError::Binary(_))
            ));
        }
    }

    #[test]
    fn oversized_lengths_are_refused_without_allocating_them() {
        // A map claiming 4 billion entries, a string claiming 4 GiB, an array claiming 4 billion
        // elements, each followed by a few bytes only.
        for body in [
            &[
                0xdf, 0xff, 0xff, 0xff, 0xff, 0xa5, b'v', b'a', b'l', b'u', b'e',
            ][..],
            &[
                0x82, 0xa5, b'v', b'a', b'l', b'u', b'e', 0xdb, 0xff, 0xff, 0xff, 0xff, b'x',
            ],
            &[
                0x82, 0xa7, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0xdd, 0xff, 0xff, 0xff, 0xff,
            ],
        ] {
            assert!(matches!(
                decode::<Versioned<Entity>>(&sealed(body)),
                Err(DecodeError::Binary(_))
            ));
        }
        // Deep nesting stops at the decoder's depth limit instead of overflowing the stack.
        let deep = vec![0x91; 100_000];
        assert!(decode::<Change>(&sealed(&deep)).is_err());
    }

    #[test]
    fn unknown_formats_and_bad_json_are_errors() {
        assert!(matches!(
            decode::<Versioned<Entity>>(&[0x02, 0, 0, 0, 0]),
            Err(DecodeError::UnknownFormat(0x02))
        ));
        assert!(matches!(
            decode::<Versioned<Entity>>(b"{not json"),
            Err(DecodeError::Json(_))
        ));
        let e = decode::<Versioned<Entity>>(b"{not json").unwrap_err();
        assert!(
            chain(&e).starts_with("undecodable JSON value: "),
            "{}",
            chain(&e)
        );
    }
}
