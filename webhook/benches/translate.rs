//! `translate` over N authenticators, N/5 roles and N/2 bindings (N = 1k, 5k, 10k).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use base64::Engine as _;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fidomesh::mds::Mds;
use fidomesh::model::*;
use fidomesh::settings::Settings;
use fidomesh::translate::{Resources, translate};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

// The same allocator as the `fidomesh` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn mk_resources(n: usize) -> Resources {
    let ts = |s: &str| Time(s.parse().unwrap());
    let authenticators = (0..n)
        .map(|i| {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Authenticator::new(
                &format!("key-{i}"),
                AuthenticatorSpec {
                    credential_id: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
                    aaguid: "ee882879-721c-4913-9775-3dfcce97072a".into(),
                    holder: format!("user{i}@example.com"),
                    attestation: Attestation {
                        format: AttestationFormat::Packed,
                        backup_eligible: false,
                    },
                    // One key in ten is expired, to exercise drops.
                    not_before: ts("2026-12-01T00:00:00Z"),
                    not_after: Some(if i % 10 == 0 {
                        ts("2026-12-02T00:00:00Z")
                    } else {
                        ts("2027-03-01T00:00:00Z")
                    }),
                    service_account: ServiceAccountRef {
                        namespace: "ops-sessions".into(),
                        name: format!("user{i}-debug"),
                    },
                },
            )
        })
        .collect();
    let roles_n = n / 5;
    let roles = (0..roles_n)
        .map(|i| {
            let ns = format!("team-{}", i % 50);
            let mut r = MeshRole::new(
                &format!("role-{i}"),
                MeshRoleSpec {
                    targets: vec![
                        RoleTarget {
                            group: None,
                            kind: TargetKind::Server,
                            name: format!("api-{i}"),
                        },
                        RoleTarget {
                            group: Some("gateway.networking.k8s.io".into()),
                            kind: TargetKind::HttpRoute,
                            name: format!("route-{i}"),
                        },
                    ],
                },
            );
            r.metadata.namespace = Some(ns);
            r
        })
        .collect();
    let bindings = (0..n / 2)
        .map(|i| {
            let role = i % roles_n;
            let mut b = MeshRoleBinding::new(
                &format!("binding-{i}"),
                MeshRoleBindingSpec {
                    role_ref: RoleRef {
                        name: format!("role-{role}"),
                    },
                    authenticators: (0..4)
                        .map(|k| AuthenticatorSubject {
                            credential_id: None,
                            name: Some(format!("key-{}", (i * 2 + k) % n)),
                        })
                        .collect(),
                },
            );
            b.metadata.namespace = Some(format!("team-{}", role % 50));
            b
        })
        .collect();
    Resources {
        authenticators,
        roles,
        bindings,
    }
}

fn bench(c: &mut Criterion) {
    let settings = Settings::default();
    let mds = Mds::empty();
    let at = "2026-12-15T00:00:00Z".parse().unwrap();
    let mut group = c.benchmark_group("translate");
    group.sample_size(20);
    for n in [1_000usize, 5_000, 10_000] {
        let res = mk_resources(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &res, |b, res| {
            b.iter(|| translate(res, &settings, &mds, at))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
