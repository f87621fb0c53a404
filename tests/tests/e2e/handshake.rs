//! Every handshake outcome, over real websockets on 127.0.0.1 with real signed JWTs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jsonwebtoken::{Algorithm, EncodingKey};
use labchat::app::Settings;
use labchat_tests::client::{Client, handshake_bearer, handshake_protocols, refusal};
use labchat_tests::harness::{SECRET, TestServer, fixture, now_secs, settings, sign, sign_with, token, unsigned};
use labchat_transport_ws::JwtAlgorithm;
use serde_json::json;

#[tokio::test]
async fn a_valid_bearer_token_upgrades_on_both_paths() {
    let server = TestServer::start().await;
    for path in ["/", "/ws"] {
        let url = format!("ws://{}{path}", server.addr);
        let mut c = Client::connect(&url, &token("t1", "TEACHER")).await;
        let rid = server.add_request("t1").await.to_hex();
        let history = c.join(&rid).await;
        let members = json!([{"userId": "t1", "role": "TEACHER"}]);
        assert_eq!(
            history,
            json!({"requestId": rid, "messages": [], "hasMore": false, "unread": 0, "firstUnreadId": null, "members": members, "membersCount": 1, "membersNext": null})
        );
    }
}

#[tokio::test]
async fn browsers_authenticate_with_subprotocols_and_get_labchat_v1_selected() {
    let server = TestServer::start().await;
    let bearer = format!("bearer.{}", token("lab-1", "LAB"));
    let (ws, resp) = handshake_protocols(&server.url(), &["labchat.v1", &bearer]).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "labchat.v1");
    drop(ws);
    // The bearer subprotocol alone (without labchat.v1) is not the browser form: refused.
    let (status, body) = refusal(handshake_protocols(&server.url(), &[&bearer]).await);
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));
}

#[tokio::test]
async fn missing_or_invalid_tokens_get_401_and_no_upgrade() {
    let server = TestServer::start().await;
    let exp = now_secs() + 3600;
    let lab = json!({"sub":"t1","role":"LAB","exp":exp});
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).unwrap();
    let cases = [
        ("no token", None),
        ("garbage", Some("not-a-jwt".to_owned())),
        (
            "bad signature",
            Some(sign_with(&lab, Algorithm::HS256, &EncodingKey::from_secret(b"another-secret-of-enough-length"))),
        ),
        ("alg none", Some(unsigned(&lab))),
        ("other HMAC algorithm", Some(sign_with(&lab, Algorithm::HS512, &EncodingKey::from_secret(SECRET)))),
        ("RS256 when HS256 is configured", Some(sign_with(&lab, Algorithm::RS256, &rsa))),
        ("expired", Some(sign(&json!({"sub":"t1","role":"LAB","exp":now_secs() - 5})))),
        ("not yet valid", Some(sign(&json!({"sub":"t1","role":"LAB","exp":exp,"nbf":now_secs() + 600})))),
        ("no exp", Some(sign(&json!({"sub":"t1","role":"LAB"})))),
        ("no sub", Some(sign(&json!({"role":"LAB","exp":exp})))),
        ("numeric sub", Some(sign(&json!({"sub":12,"role":"LAB","exp":exp})))),
    ];
    for (name, tok) in cases {
        let result = match &tok {
            Some(t) => handshake_bearer(&server.url(), t).await,
            None => tokio_tungstenite::connect_async(server.url()).await,
        };
        let (status, body) = refusal(result);
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["code"], "UNAUTHORIZED", "{name}");
        let message = body["message"].as_str().unwrap();
        assert!(!message.is_empty(), "{name}");
        if let Some(t) = &tok {
            assert!(!message.contains(t.as_str()), "{name}: the token must not be echoed");
        }
    }
}

#[tokio::test]
async fn valid_tokens_with_another_role_get_403() {
    let server = TestServer::start().await;
    let exp = now_secs() + 3600;
    for claims in [
        json!({"sub":"s1","role":"STUDENT","exp":exp}),
        json!({"sub":"s1","role":"teacher","exp":exp}),
        json!({"sub":"s1","exp":exp}),
        json!({"sub":"s1","role":["LAB"],"exp":exp}),
    ] {
        let (status, body) = refusal(handshake_bearer(&server.url(), &sign(&claims)).await);
        assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{claims}");
    }
}

#[tokio::test]
async fn issuer_audience_and_role_claim_follow_configuration() {
    let mut s: Settings = settings();
    s.auth.issuer = Some("lab-auth".into());
    s.auth.audience = Some("labchat".into());
    s.auth.role_claim = "https://lab/role".into();
    let server = TestServer::start_with(s).await;
    let exp = now_secs() + 3600;
    let good = json!({"sub":"l1","https://lab/role":"LAB","exp":exp,"iss":"lab-auth","aud":"labchat"});
    assert!(handshake_bearer(&server.url(), &sign(&good)).await.is_ok());
    for (name, claims, status) in [
        ("wrong issuer", json!({"sub":"l1","https://lab/role":"LAB","exp":exp,"iss":"x","aud":"labchat"}), 401),
        ("no issuer", json!({"sub":"l1","https://lab/role":"LAB","exp":exp,"aud":"labchat"}), 401),
        ("wrong audience", json!({"sub":"l1","https://lab/role":"LAB","exp":exp,"iss":"lab-auth","aud":"y"}), 401),
        (
            "role in the default claim only",
            json!({"sub":"l1","role":"LAB","exp":exp,"iss":"lab-auth","aud":"labchat"}),
            403,
        ),
    ] {
        let (got, _) = refusal(handshake_bearer(&server.url(), &sign(&claims)).await);
        assert_eq!(got, status, "{name}");
    }
}

#[tokio::test]
async fn rs256_and_es256_verify_with_public_keys_and_refuse_key_confusion() {
    let exp = now_secs() + 3600;
    let claims = json!({"sub":"t1","role":"TEACHER","exp":exp});
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&fixture("ec-private.pem")).unwrap();
    for (alg, jwt_alg, private, public) in [
        (Algorithm::RS256, JwtAlgorithm::Rs256, rsa, "rsa-public.pem"),
        (Algorithm::ES256, JwtAlgorithm::Es256, ec, "ec-public.pem"),
    ] {
        let mut s = settings();
        s.auth.algorithm = jwt_alg;
        s.auth.key = fixture(public);
        let server = TestServer::start_with(s).await;
        assert!(handshake_bearer(&server.url(), &sign_with(&claims, alg, &private)).await.is_ok(), "{alg:?}");
        // HS256 signed with the public key as the secret (the classic confusion attack).
        let confused = sign_with(&claims, Algorithm::HS256, &EncodingKey::from_secret(&fixture(public)));
        assert_eq!(refusal(handshake_bearer(&server.url(), &confused).await).0, 401, "{alg:?}");
        assert_eq!(refusal(handshake_bearer(&server.url(), &unsigned(&claims)).await).0, 401, "{alg:?}");
    }
}

#[tokio::test]
async fn plain_http_gets_health_and_404() {
    let server = TestServer::start().await;
    let get = |path: &'static str| {
        let addr = server.addr;
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        }
    };
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    assert!(get("/ws").await.starts_with("HTTP/1.1 426"));
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_format() {
    let server = TestServer::start().await;
    let rid = server.add_request("t1").await.to_hex();
    let _ = refusal(tokio_tungstenite::connect_async(server.url()).await);
    let mut c = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    c.join(&rid).await;
    c.post(&rid, "counted").await;
    c.send_text("not json").await;
    c.recv().await;
    let body = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    for needle in [
        "labchat_connections_open",
        "labchat_rooms_joined",
        "labchat_frames_in_total{event=\"message\"}",
        "labchat_frames_in_total{event=\"invalid\"}",
        "labchat_frames_out_total{event=\"roomHistory\"}",
        "labchat_frames_out_total{event=\"message\"}",
        "labchat_errors_total{code=\"BAD_REQUEST\"}",
        "labchat_handshake_rejections_total{reason=\"missing_token\"}",
        "labchat_store_op_seconds_bucket{op=\"insert_message\",outcome=\"ok\"",
        "labchat_broadcast_seconds_bucket",
        "labchat_messages_stored_total",
    ] {
        assert!(body.contains(needle), "missing {needle} in\n{body}");
    }
}
