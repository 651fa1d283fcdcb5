//! `RunArgs` → [`Overrides`]: the plan layer never sees clap (ripgrep's low-args → high-args
//! split); this is the one place the flags are copied over.

use super::RunArgs;
use crate::plan::Overrides;

impl RunArgs {
    /// The plan-relevant settings of these flags (the plan layer never sees clap).
    pub fn overrides(&self) -> Overrides {
        Overrides {
            profile: self.profile.clone(),
            targets: self.targets.clone(),
            connections: self.connections,
            ramp: self.ramp,
            hold: self.hold,
            ramp_down: self.ramp_down,
            stages: self.stages.clone(),
            session_duration: self.churn.session_duration,
            session_seed: self.churn.session_seed,
            arrival_rate: self.churn.arrival_rate,
            max_open: self.churn.max_open,
            cool_down: self.cool_down,
            threads: self.threads,
            max_pending: self.max_pending,
            source_ips: self.source_ips.clone(),
            connect_timeout: self.connect_timeout,
            handshake_timeout: self.handshake_timeout,
            close_timeout: self.close_timeout,
            close: self.close,
            max_frame: self.max_frame,
            reconnect: self.reconnect,
            no_reconnect: self.no_reconnect,
            reconnect_initial: self.reconnect_initial,
            reconnect_max: self.reconnect_max,
            reconnect_jitter: self.recovery.reconnect_jitter,
            disruption_threshold: self.recovery.disruption_threshold,
            message_burst: self.recovery.message_burst,
            gateway_faults: self.recovery.gateway_faults(),
            rcvbuf: self.rcvbuf,
            sndbuf: self.sndbuf,
            origin: self.origin.clone(),
            headers: self.headers.clone(),
            header_file: self.header_file.clone(),
            user_agent: self.user_agent.clone(),
            compression: self.compression.clone(),
            subprotocol: self.subprotocol.clone(),
            token: self.token.clone(),
            jwt_secret: self.jwt_secret.clone(),
            jwt_secret_file: self.jwt_secret_file.clone(),
            jwt_key_file: self.jwt_key_file.clone(),
            jwt_alg: self.jwt_alg,
            jwt_claims: self.jwt_claims.clone(),
            jwt_in: self.jwt_in.clone(),
            tls_sni: self.tls_sni.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_insecure: self.tls_insecure,
            tls_client_cert: self.tls_client_cert.clone(),
            tls_client_key: self.tls_client_key.clone(),
            tls_resume: self.tls_resume,
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            heartbeat_text: self.heartbeat_text.clone(),
            heartbeat_interval: self.heartbeat_interval,
            heartbeat_expect: self.heartbeat_expect.clone(),
            heartbeat_timeout: self.heartbeat_timeout,
            first_message: self.first_message.clone(),
            first_message_expect: self.first_message_expect.clone(),
            protocol: self.protocol.clone(),
            open: if self.open.is_empty() {
                // Built in code rather than parsed: sends first, then expectations.
                self.send
                    .iter()
                    .map(|s| crate::plan::OpenArg::Send(s.clone()))
                    .chain(
                        self.expect
                            .iter()
                            .map(|e| crate::plan::OpenArg::Expect(e.clone())),
                    )
                    .collect()
            } else {
                self.open.clone()
            },
            replies: self.replies.clone(),
            subscribe: self.subscribe.clone(),
            publish_topic: self.publish_topic.clone(),
            namespace: self.namespace.clone(),
            event: self.event.clone(),
            stomp_login: self.stomp_login.clone(),
            init_payload: self.init_payload.clone(),
            method: self.method.clone(),
            message_rate: self.message_rate,
            message_size: self.message_size,
            message_text: self.message_text.clone(),
            message_timeout: self.message_timeout,
            publishers: self.publishers,
            misbehave: self.scenario.misbehave.clone(),
            data: self.scenario.data.clone(),
            data_mode: self.scenario.data_mode,
            push_timestamp: self.push_timestamp.clone(),
            thresholds: self.thresholds.clone(),
            abort_on_fail: self.abort_on_fail,
            allow_failures: self.allow_failures,
            interval: self.interval,
            report_json: self.report_json.clone(),
            report_csv: self.report_csv.clone(),
            checkpoint: self.checkpoint,
            report_html: self.report_html.clone(),
        }
    }
}
