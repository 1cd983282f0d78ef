/*
 * test_api_null: the NULL rule, for every public function at once.
 *
 * The rule (error.h, "Bad arguments"): a call given NULL where it needs an
 * object or an output never crashes.  A call that returns an int returns
 * FE_EINVAL; a count, size or lsn comes back 0; a pointer NULL; a name
 * "UNKNOWN" (or NULL where the header says so); a void call does nothing
 * (config_init(NULL), destroy(NULL)).  Each row of the table below calls
 * one function with NULL for every pointer and 0 for every number, in a
 * child process of its own (a crash names the row instead of killing the
 * suite), and compares what it returned with what the header promises.
 * A second table passes real objects with NULL outputs and garbage
 * values (unknown stage, worker, reason, state).
 *
 * The list must cover the whole API: test_table_is_complete compares it
 * with the FE_API declarations in include/finevent/ (the build passes the
 * directory as FE_INCLUDE_DIR).
 */
#include "helpers.h"

#include <sys/wait.h>

/* The companion libraries' headers (not in finevent.h): the build links
 * libfinevent-compliance-conf always (its own suite needs libinih too) and
 * libfinevent-kafka only when librdkafka is present (FE_HAVE_KAFKA). */
#include "finevent/compliance_conf.h"
#ifdef FE_HAVE_KAFKA
#include "finevent/kafka.h"
#endif

/* X(kind, call, expected): kind INT (the value), PTR (0: NULL), STR (1:
 * not NULL, 0: NULL), VOID (returns; expected 0), ANY (takes no pointer
 * that matters: only "does not crash"). */
#define API_NULL(X) \
  X(VOID, fe_audit_config_init(NULL), 0) \
  X(INT, fe_audit_create(NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_audit_destroy(NULL), 0) \
  X(INT, fe_audit_append(NULL, NULL), FE_EINVAL) \
  X(INT, fe_audit_event(NULL, NULL, 0, 0, 0, 0, NULL), FE_EINVAL) \
  X(INT, fe_audit_note(NULL, 0, 0, NULL), FE_EINVAL) \
  X(VOID, fe_audit_breaker_hook(NULL, 0, 0, NULL), 0) \
  X(VOID, fe_audit_trading_hook(0, 0, 0, 0, NULL, NULL), 0) \
  X(VOID, fe_audit_kill_hook(0, NULL, NULL), 0) \
  X(VOID, fe_audit_saga_log(NULL, 0, NULL), 0) \
  X(INT, fe_audit_flush(NULL, 0), FE_EINVAL) \
  X(INT, fe_audit_stats(NULL, NULL), FE_EINVAL) \
  X(STR, fe_audit_decision_name(0), 1) \
  X(INT, fe_audit_decision_parse(NULL), 0) \
  X(STR, fe_audit_bad_name(0), 1) \
  X(VOID, fe_audit_verifier_init(NULL, NULL), 0) \
  X(INT, fe_audit_verifier_feed(NULL, NULL, NULL, 0, NULL, NULL), FE_EINVAL) \
  X(INT, fe_audit_verifier_end(NULL), FE_EINVAL) \
  X(INT, fe_audit_verify_dir(NULL, NULL, NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_breaker_config_init(NULL), 0) \
  X(INT, fe_breaker_config_check(NULL, NULL), FE_EINVAL) \
  X(INT, fe_breaker_create(NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_breaker_destroy(NULL), 0) \
  X(INT, fe_breaker_acquire(NULL, NULL), FE_EINVAL) \
  X(INT, fe_breaker_on_success(NULL, 0), FE_EINVAL) \
  X(INT, fe_breaker_on_error(NULL, 0), FE_EINVAL) \
  X(INT, fe_breaker_release(NULL, 0), FE_EINVAL) \
  X(INT, fe_breaker_force_open(NULL), FE_EINVAL) \
  X(INT, fe_breaker_disable(NULL), FE_EINVAL) \
  X(INT, fe_breaker_metrics_only(NULL), FE_EINVAL) \
  X(INT, fe_breaker_reset(NULL), FE_EINVAL) \
  X(INT, fe_breaker_state(NULL), FE_EINVAL) \
  X(STR, fe_breaker_name(NULL), 0) \
  X(STR, fe_breaker_state_name(0), 1) \
  X(INT, fe_breaker_metrics(NULL, NULL), FE_EINVAL) \
  X(INT, fe_reject(NULL, 1), FE_REJECT) \
  X(INT, fe_retry(NULL, 1), FE_RETRY) \
  X(INT, fe_fail(NULL, 1), FE_FAIL) \
  X(PTR, fe_event_user(NULL), 0) \
  X(VOID, fe_batch_reject(NULL, NULL, 0), 0) \
  X(VOID, fe_batch_fail(NULL, NULL, 0), 0) \
  X(VOID, fe_bus_config_init(NULL), 0) \
  X(VOID, fe_stage_def_init(NULL), 0) \
  X(INT, fe_bus_create(NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_bus_start(NULL, NULL), FE_EINVAL) \
  X(INT, fe_bus_try_claim(NULL, NULL), FE_EINVAL) \
  X(INT, fe_bus_claim(NULL, NULL, 0), FE_EINVAL) \
  X(INT, fe_bus_publish(NULL, NULL), FE_EINVAL) \
  X(INT, fe_bus_priv_claim_slow(NULL, NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_bus_priv_claim_void(NULL, 0), FE_EINVAL) \
  X(INT, fe_bus_priv_publish_slow(NULL, NULL), FE_EINVAL) \
  X(VOID, fe_bus_priv_wake(NULL), 0) \
  X(INT, fe_bus_try_claim_n(NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_bus_claim_n(NULL, 0, NULL, 0), FE_EINVAL) \
  X(PTR, fe_bus_event_at(NULL, 0), 0) \
  X(INT, fe_bus_publish_order(NULL, 0, NULL, 0, 0, NULL), FE_EINVAL) \
  X(INT, fe_bus_submit(NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_bus_submit_n(NULL, NULL, 0, NULL, NULL), FE_EINVAL) \
  X(INT, fe_bus_intent(NULL, NULL), FE_EINVAL) \
  X(INT, fe_bus_recovery(NULL, NULL), FE_EINVAL) \
  X(PTR, fe_bus_journal(NULL), 0) \
  X(INT, fe_bus_redrive(NULL, NULL, 0, 0, NULL), FE_EINVAL) \
  X(INT, fe_bus_publish_n(NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_bus_poll(NULL, 0), FE_EINVAL) \
  X(INT, fe_bus_drain(NULL, 0), FE_EINVAL) \
  X(INT, fe_bus_stop(NULL), FE_EINVAL) \
  X(VOID, fe_bus_destroy(NULL), 0) \
  X(INT, fe_bus_stats(NULL, NULL), FE_EINVAL) \
  X(INT, fe_bus_on_stage_timing(NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_bus_stage_stats(NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_bus_stage_rejects(NULL, 0, 0), 0) \
  X(INT, fe_bus_stage_id(NULL, NULL), FE_EINVAL) \
  X(STR, fe_bus_stage_name(NULL, 0), 0) \
  X(INT, fe_bus_capacity(NULL), 0) \
  X(INT, fe_bus_user_size(NULL), 0) \
  X(INT, fe_bus_workers(NULL), 0) \
  X(ANY, fe_clock_init(NULL), 0) \
  X(ANY, fe_clock_init_source(0, NULL), 0) \
  X(ANY, fe_clock_source(), 0) \
  X(STR, fe_clock_source_name(0), 1) \
  X(ANY, fe_clock_ticks(), 0) \
  X(ANY, fe_clock_ticks_to_ns(0), 0) \
  X(ANY, fe_clock_ns_to_ticks(0), 0) \
  X(ANY, fe_clock_now_ns(), 0) \
  X(ANY, fe_clock_realtime_ns(), 0) \
  X(ANY, fe_clock_ticks_per_sec(), 0) \
  X(ANY, fe_clock_wall_fn(NULL), 0) \
  X(INT, fe_compliance_rules_create(NULL), FE_EINVAL) \
  X(VOID, fe_compliance_rules_destroy(NULL), 0) \
  X(INT, fe_compliance_rules_copy(NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_rules_profile(NULL, 0), FE_EINVAL) \
  X(INT, fe_compliance_rules_mode(NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_compliance_rules_limit(NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_compliance_rules_account_limit(NULL, 0, 0, 0), FE_EINVAL) \
  X(INT, fe_compliance_rules_symbol_limit(NULL, NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_compliance_rules_authorize(NULL, 0), FE_EINVAL) \
  X(INT, fe_compliance_rules_restrict(NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_rules_collar(NULL, NULL, 0, 0, 0), FE_EINVAL) \
  X(INT, fe_compliance_rules_smp(NULL, 0), FE_EINVAL) \
  X(INT, fe_compliance_rules_fingerprint(NULL, NULL), FE_EINVAL) \
  X(VOID, fe_compliance_config_init(NULL), 0) \
  X(INT, fe_compliance_create(NULL, NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_compliance_destroy(NULL), 0) \
  X(INT, fe_compliance_apply(NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_pin(NULL, (fe_fingerprint_t){0}, 0), FE_EINVAL) \
  X(INT, fe_compliance_fingerprint(NULL, NULL), FE_EINVAL) \
  X(INT, fe_fingerprint_format((fe_fingerprint_t){0}, NULL), FE_EINVAL) \
  X(INT, fe_fingerprint_parse(NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_check(NULL, 0, NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_fill(NULL, 0, NULL, NULL, 0), FE_EINVAL) \
  X(INT, fe_compliance_release(NULL, 0, NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_set_reference(NULL, NULL, 0), FE_EINVAL) \
  X(INT, fe_compliance_reference(NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_reserved(NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_position(NULL, 0, NULL), 0) \
  X(INT, fe_compliance_stats(NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_stage(NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_md_stage(NULL, NULL, NULL), FE_EINVAL) \
  X(STR, fe_compliance_rule_name(0), 1) \
  X(STR, fe_compliance_mode_name(0), 1) \
  X(STR, fe_compliance_limit_name(0), 1) \
  X(INT, fe_compliance_fix_reason(0), -1) \
  X(INT, fe_compliance_conf_parse(NULL, 0, NULL, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_conf_load(NULL, NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_dlq_config_init(NULL), 0) \
  X(INT, fe_dlq_config_check(NULL, NULL), FE_EINVAL) \
  X(INT, fe_dlq_create(NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_dlq_destroy(NULL), 0) \
  X(INT, fe_dlq_put(NULL, NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_dlq_count(NULL), FE_EINVAL) \
  X(INT, fe_dlq_count_reason(NULL, 0), FE_EINVAL) \
  X(INT, fe_dlq_foreach(NULL, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_dlq_get(NULL, 0, NULL, NULL, 0), FE_EINVAL) \
  X(INT, fe_dlq_redrive(NULL, 0, NULL, NULL), FE_EINVAL) \
  X(INT, fe_dlq_redrive_all(NULL, NULL, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_dlq_purge(NULL, 0), FE_EINVAL) \
  X(INT, fe_dlq_purge_all(NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_dlq_stats(NULL, NULL), FE_EINVAL) \
  X(STR, fe_dlq_kind_name(0), 1) \
  X(STR, fe_strerror(0), 1) \
  X(STR, fe_err_name(0), 1) \
  X(INT, fe_event_rejected(NULL, NULL, NULL), 0) \
  X(INT, fe_event_dead_lettered(NULL, NULL, NULL), 0) \
  X(VOID, fe_gateway_config_init(NULL), 0) \
  X(INT, fe_gateway_create(NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_gateway_destroy(NULL), 0) \
  X(INT, fe_gateway_stage(NULL, NULL, NULL), FE_FAIL) \
  X(INT, fe_gateway_stats(NULL, 0, NULL), FE_EINVAL) \
  X(VOID, fe_hist_config_init(NULL), 0) \
  X(INT, fe_hist_config_check(NULL, NULL), FE_EINVAL) \
  X(INT, fe_hist_memsize(NULL), 0) \
  X(INT, fe_hist_init(NULL, 0, NULL, NULL), FE_EINVAL) \
  X(INT, fe_hist_create(NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_hist_destroy(NULL), 0) \
  X(INT, fe_hist_record(NULL, 0), FE_EINVAL) \
  X(INT, fe_hist_record_n(NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_hist_record_atomic(NULL, 0), FE_EINVAL) \
  X(INT, fe_hist_record_n_atomic(NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_hist_reset(NULL), FE_EINVAL) \
  X(INT, fe_hist_merge(NULL, NULL), FE_EINVAL) \
  X(INT, fe_hist_get_config(NULL, NULL), FE_EINVAL) \
  X(INT, fe_hist_count(NULL), 0) \
  X(INT, fe_hist_overflow(NULL), 0) \
  X(INT, fe_hist_min(NULL), 0) \
  X(INT, fe_hist_max(NULL), 0) \
  X(INT, fe_hist_mean(NULL), 0) \
  X(INT, fe_hist_percentile(NULL, 0.0), 0) \
  X(INT, fe_hist_count_at(NULL, 0), 0) \
  X(INT, fe_hist_lowest_equiv(NULL, 0), 0) \
  X(INT, fe_hist_highest_equiv(NULL, 0), 0) \
  X(VOID, fe_hist_iter_init(NULL, NULL), 0) \
  X(INT, fe_hist_iter_next(NULL), 0) \
  X(VOID, fe_idem_config_init(NULL), 0) \
  X(INT, fe_idem_create(NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_idem_destroy(NULL), 0) \
  X(INT, fe_idem_key(0, NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_idem_key_order(NULL, NULL), FE_EINVAL) \
  X(INT, fe_idem_fingerprint(NULL), 0) \
  X(INT, fe_idem_claim(NULL, NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_idem_claim_lease(NULL, NULL, 0, 0, NULL), FE_EINVAL) \
  X(INT, fe_idem_reopen(NULL, NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_idem_complete(NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_idem_abandon(NULL, 0), FE_EINVAL) \
  X(INT, fe_idem_extend(NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_idem_lookup(NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_idem_lookup_n(NULL, NULL, 0, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_idem_prefetch(NULL, NULL), 0) \
  X(VOID, fe_idem_prefetch_claim(NULL, NULL), 0) \
  X(INT, fe_idem_reap(NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_idem_restore(NULL, NULL, 0, NULL, 0), FE_EINVAL) \
  X(INT, fe_idem_stats(NULL, NULL), FE_EINVAL) \
  X(VOID, fe_journal_config_init(NULL), 0) \
  X(INT, fe_journal_config_check(NULL, NULL), FE_EINVAL) \
  X(INT, fe_journal_open(NULL, NULL, NULL, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_journal_close(NULL), 0) \
  X(INT, fe_journal_append(NULL, 0, NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_journal_commit(NULL), FE_EINVAL) \
  X(INT, fe_journal_tick(NULL), FE_EINVAL) \
  X(INT, fe_journal_sync(NULL), FE_EINVAL) \
  X(INT, fe_journal_written_lsn(NULL), 0) \
  X(INT, fe_journal_durable_lsn(NULL), 0) \
  X(INT, fe_journal_wait_durable(NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_journal_retire(NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_journal_pin(NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_journal_pin_set(NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_journal_pin_release(NULL, 0), FE_EINVAL) \
  X(INT, fe_journal_max_record(NULL), 0) \
  X(INT, fe_journal_stats(NULL, NULL), FE_EINVAL) \
  X(INT, fe_journal_scan(NULL, 0, NULL, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_journal_truncate_corrupt(NULL, 0, NULL, NULL), FE_EINVAL) \
  X(STR, fe_journal_type_name(0), 1) \
  X(STR, fe_log_level_name(0), 1) \
  X(INT, fe_log_event(NULL, 0, NULL, 0, NULL, NULL), 0) \
  X(VOID, fe_metrics_config_init(NULL), 0) \
  X(INT, fe_metrics_create(NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_metrics_destroy(NULL), 0) \
  X(INT, fe_metrics_latency(NULL, 0, 0, 0), FE_EINVAL) \
  X(INT, fe_metrics_attach(NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_metrics_stage_timing(NULL, NULL), 0) \
  X(INT, fe_metrics_batch(NULL, 0, 0, 0), FE_EINVAL) \
  X(INT, fe_metrics_count(NULL, 0, 0, 0, 0), FE_EINVAL) \
  X(INT, fe_metrics_gauge(NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_metrics_write_prometheus(NULL, NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_metrics_write_json(NULL, NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_metrics_tick(NULL, 0), FE_EINVAL) \
  X(STR, fe_reason_name(0), 0) \
  X(STR, fe_reason_meaning(0), 0) \
  X(VOID, fe_recon_config_init(NULL), 0) \
  X(INT, fe_recon_run(NULL, NULL, 0, NULL, 0, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_recon_report_free(NULL), 0) \
  X(INT, fe_recon_parse(NULL, 0, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_recon_load(NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_recon_statement_free(NULL), 0) \
  X(INT, fe_recon_write(NULL, NULL, 0, NULL, 0, NULL), FE_EINVAL) \
  X(STR, fe_recon_kind_name(0), 1) \
  X(INT, fe_recon_settle_date(0, 0, NULL), FE_EINVAL) \
  X(INT, fe_recon_weekday(0), FE_ERANGE) \
  X(VOID, fe_retry_policy_init(NULL), 0) \
  X(INT, fe_retry_policy_non_retryable(NULL, 0), FE_EINVAL) \
  X(INT, fe_retry_policy_check(NULL, NULL), FE_EINVAL) \
  X(INT, fe_retry_next(NULL, 0, 0, 0, NULL), FE_EINVAL) \
  X(VOID, fe_saga_def_init(NULL), 0) \
  X(INT, fe_saga_def_check(NULL, NULL), FE_EINVAL) \
  X(INT, fe_saga_order_template(NULL, NULL), FE_EINVAL) \
  X(VOID, fe_saga_config_init(NULL), 0) \
  X(INT, fe_saga_config_check(NULL, NULL), FE_EINVAL) \
  X(INT, fe_saga_create(NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_saga_destroy(NULL), 0) \
  X(INT, fe_saga_define(NULL, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_saga_thread_start(NULL), FE_EINVAL) \
  X(INT, fe_saga_thread_stop(NULL), FE_EINVAL) \
  X(INT, fe_saga_poll(NULL, 0), FE_EINVAL) \
  X(INT, fe_saga_idle_ns(NULL), UINT64_MAX) \
  X(VOID, fe_saga_wake(NULL), 0) \
  X(INT, fe_saga_start(NULL, 0, NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_saga_complete(NULL, 0, 0, 0), FE_EINVAL) \
  X(INT, fe_saga_heartbeat(NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_saga_abort(NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_saga_redrive(NULL, 0), FE_EINVAL) \
  X(INT, fe_saga_get(NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_saga_foreach(NULL, 0, NULL, NULL), FE_EINVAL) \
  X(INT, fe_saga_stats(NULL, NULL), FE_EINVAL) \
  X(STR, fe_saga_state_name(0), 1) \
  X(INT, fe_saga_replay(NULL, NULL, 0), FE_EINVAL) \
  X(STR, fe_saga_rec_type_name(0), 1) \
  X(INT, fe_saga_use_journal(NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_saga_journal_replay(NULL, NULL), FE_EINVAL) \
  X(VOID, fe_saga_bus_map_init(NULL), 0) \
  X(INT, fe_saga_bus_stage(NULL, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_saga_bus_stats(NULL, NULL), FE_EINVAL) \
  X(VOID, fe_throttle_config_init(NULL), 0) \
  X(INT, fe_throttle_create(NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_throttle_destroy(NULL), 0) \
  X(INT, fe_throttle_admit(NULL, 0, 0), FE_EINVAL) \
  X(INT, fe_throttle_reset(NULL), FE_EINVAL) \
  X(INT, fe_throttle_stats(NULL, NULL), FE_EINVAL) \
  X(INT, fe_traceparent_format(NULL, NULL), FE_EINVAL) \
  X(INT, fe_traceparent_parse(NULL, 0, NULL, NULL), FE_EINVAL) \
  X(INT, fe_trace_new(NULL), FE_EINVAL) \
  X(INT, fe_trace_child(NULL, NULL), FE_EINVAL) \
  X(VOID, fe_trading_config_init(NULL), 0) \
  X(INT, fe_trading_create(NULL, NULL, NULL), FE_EINVAL) \
  X(VOID, fe_trading_destroy(NULL), 0) \
  X(INT, fe_trading_check(NULL, NULL), FE_EINVAL) \
  X(INT, fe_trading_set_global(NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_trading_set_account(NULL, 0, 0, NULL), FE_EINVAL) \
  X(INT, fe_trading_get_global(NULL), FE_EINVAL) \
  X(INT, fe_trading_get_account(NULL, 0), FE_EINVAL) \
  X(INT, fe_trading_kill(NULL, NULL), FE_EINVAL) \
  X(INT, fe_trading_stats(NULL, NULL), FE_EINVAL) \
  X(STR, fe_trading_state_name(0), 1) \
  API_NULL_KAFKA(X)

/* libfinevent-kafka: rows only when the build links it; otherwise
 * test_table_is_complete leaves kafka.h out (K_SKIP_HEADERS). */
#ifdef FE_HAVE_KAFKA
#define API_NULL_KAFKA(X) \
  X(VOID, fe_kafka_config_init(NULL), 0) \
  X(INT, fe_kafka_create(NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_kafka_start(NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_kafka_stop(NULL), FE_EINVAL) \
  X(VOID, fe_kafka_destroy(NULL), 0) \
  X(VOID, fe_kafka_on_outcome(NULL, NULL, NULL), 0) \
  X(VOID, fe_kafka_intent_stage(NULL, NULL, 0, NULL), 0) \
  X(INT, fe_kafka_stats(NULL, NULL), FE_EINVAL) \
  X(INT, fe_kafka_order_encode(0, NULL, 0, NULL, 0), FE_EINVAL) \
  X(INT, fe_kafka_order_decode(NULL, 0, NULL, 0, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_kafka_outcome_decode(NULL, 0, NULL), FE_EINVAL)
#define K_SKIP_HEADERS "^$"
#else
#define API_NULL_KAFKA(X)
#define K_SKIP_HEADERS "/kafka\\.h$"
#endif

#define RUN_INT(call) ((int64_t)(call))
#define RUN_PTR(call) ((int64_t)(intptr_t)(call))
#define RUN_STR(call) ((int64_t)((call) != NULL))
#define RUN_VOID(call) ((call), (int64_t)0)
#define RUN_ANY(call) ((void)(call), (int64_t)0)

typedef struct row {
  const char *call;
  int64_t expect;
} row_t;

static const row_t k_rows[] = {
#define ROW(kind, call, expect) {#call, (int64_t)(expect)},
    API_NULL(ROW)
#undef ROW
};
#define N_ROWS (sizeof k_rows / sizeof k_rows[0])

static int64_t run_row(size_t i) {
  size_t k = 0;
#define RUN(kind, call, expect)                                               \
  if (i == k++)                                                               \
    return RUN_##kind(call);
  API_NULL(RUN)
#undef RUN
  return INT64_MIN;
}

/* Runs fn(i) in a child; 0 and *value, or -1 and a description of how the
 * child died in why. */
static int in_child(int64_t (*fn)(size_t), size_t i, int64_t *value,
                    char *why, size_t cap) {
  int fds[2];
  if (pipe(fds) != 0)
    fail_msg("pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    fail_msg("fork: %s", strerror(errno));
  if (pid == 0) {
    /* cmocka's handlers would carry on with the next test in the child */
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT,
                               SIGSYS};
    for (size_t s = 0; s < sizeof sigs / sizeof sigs[0]; s++)
      signal(sigs[s], SIG_DFL);
    close(fds[0]);
    int64_t v = fn(i);
    ssize_t w = write(fds[1], &v, sizeof v);
    _exit(w == (ssize_t)sizeof v ? 0 : 3);
  }
  close(fds[1]);
  int64_t v = 0;
  ssize_t r = read(fds[0], &v, sizeof v);
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (r == (ssize_t)sizeof v && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    *value = v;
    return 0;
  }
  if (WIFSIGNALED(status))
    snprintf(why, cap, "killed by signal %d", WTERMSIG(status));
  else
    snprintf(why, cap, "exit status %d", WEXITSTATUS(status));
  return -1;
}

static int check_rows(const row_t *rows, size_t n, int64_t (*fn)(size_t)) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t v = 0;
    char why[64];
    if (in_child(fn, i, &v, why, sizeof why) != 0) {
      print_error("%s: %s\n", rows[i].call, why);
      bad++;
    } else if (v != rows[i].expect) {
      print_error("%s: returned %" PRId64 " (%s), expected %" PRId64 " (%s)\n",
                  rows[i].call, v, fe_err_name((int)v), rows[i].expect,
                  fe_err_name((int)rows[i].expect));
      bad++;
    }
  }
  return bad;
}

static void test_null_everywhere(void **state) {
  (void)state;
  int bad = check_rows(k_rows, N_ROWS, run_row);
  if (bad != 0)
    fail_msg("%d of %zu calls broke the NULL rule", bad, N_ROWS);
}

/* ------------------------------------------- real objects, bad arguments */

/* Made by the main thread before the children fork: a host-driven bus
 * (created, not started: no threads), a DLQ, an idempotency table, a saga
 * coordinator, a histogram. */
static fe_bus_t *g_bus;
static fe_dlq_t *g_dlq;
static fe_idem_t *g_idem;
static fe_saga_coord_t *g_saga;
static fe_hist_t *g_hist;
static fe_metrics_t *g_metrics;
static fe_compliance_rules_t *g_rules;
static fe_compliance_t *g_comp;
static fe_t_def_t g_def;
static fe_stage_stats_t g_sst; /* outputs the rows may fill */
static fe_stage_timing_t g_timing = {77, 0, 999, 1, 5}; /* stage and worker
                                                          out of range */
static fe_dlq_entry_t g_entry;
static uint64_t g_u64;
static uint32_t g_u32;
static size_t g_size;
static char g_buf[512];
static fe_event_t g_ev;
static fe_trace_t g_trace; /* all zero: not a valid context */
static fe_fingerprint_t g_fp;
static fe_audit_verifier_t g_ver;
static fe_audit_verify_result_t g_vres;
static fe_recon_config_t g_rcfg;
static fe_recon_report_t g_report;
static fe_recon_statement_t *g_stmt;
static fe_compliance_rules_t *g_crules;
static fe_logger_t g_logger;
#ifdef FE_HAVE_KAFKA
static fe_order_t g_order;
static fe_kafka_outcome_t g_kout;
#endif

static void sink(fe_log_level_t level, const char *line, size_t len,
                 void *user) {
  (void)level, (void)line, (void)len, (void)user;
}

static fe_verdict_t pass(fe_stage_ctx_t *ctx, fe_event_t *ev, void *u) {
  (void)ctx, (void)ev, (void)u;
  return FE_CONTINUE;
}

#define API_GARBAGE(X) \
  X(INT, fe_bus_stats(g_bus, NULL), FE_EINVAL) \
  X(INT, fe_bus_stage_stats(g_bus, 0, NULL), FE_EINVAL) \
  X(INT, fe_bus_stage_stats(g_bus, 77, &g_sst), FE_ERANGE) \
  X(INT, fe_bus_stage_rejects(g_bus, 77, 1), 0) \
  X(INT, fe_bus_stage_rejects(g_bus, 0, 100000), 0) \
  X(STR, fe_bus_stage_name(g_bus, 77), 0) \
  X(INT, fe_bus_stage_id(g_bus, NULL), FE_EINVAL) \
  X(INT, fe_bus_stage_id(g_bus, "no such stage"), FE_ENAME) \
  X(INT, fe_bus_recovery(g_bus, NULL), FE_EINVAL) \
  X(INT, fe_bus_try_claim(g_bus, NULL), FE_EINVAL) \
  X(INT, fe_bus_claim_n(g_bus, 0, &g_u64, 0), FE_EINVAL) \
  X(INT, fe_bus_publish(g_bus, NULL), FE_EINVAL) \
  X(INT, fe_bus_priv_claim_slow(g_bus, NULL, 0, 1), FE_EINVAL) \
  X(INT, fe_bus_priv_claim_void(g_bus, 12345), FE_EINVAL) \
  X(INT, fe_bus_priv_publish_slow(g_bus, NULL), FE_EINVAL) \
  X(INT, fe_bus_poll(g_bus, 99), FE_EWORKER) \
  X(INT, fe_bus_submit(g_bus, NULL, NULL), FE_EINVAL) \
  X(INT, fe_bus_start(g_bus, NULL) == 0 ? fe_bus_poll(g_bus, 99) : -999, FE_EWORKER) \
  X(INT, fe_bus_start(g_bus, NULL) == 0 ? fe_bus_on_stage_timing(g_bus, NULL, NULL) : -999, FE_ESTATE) \
  X(INT, fe_metrics_attach(g_metrics, NULL, NULL), FE_EINVAL) \
  X(INT, fe_metrics_attach(NULL, g_bus, NULL), FE_EINVAL) \
  X(INT, fe_bus_start(g_bus, NULL) == 0 ? fe_metrics_attach(g_metrics, g_bus, NULL) : -999, FE_ESTATE) \
  X(VOID, fe_metrics_stage_timing(&g_timing, g_metrics), 0) \
  X(VOID, fe_metrics_stage_timing(&g_timing, NULL), 0) \
  X(VOID, fe_metrics_stage_timing(NULL, g_metrics), 0) \
  X(INT, fe_dlq_get(g_dlq, 1, NULL, NULL, 0), FE_EINVAL) \
  X(INT, fe_dlq_get(g_dlq, 12345, &g_entry, NULL, 0), FE_ENOTFOUND) \
  X(INT, fe_dlq_put(g_dlq, NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_dlq_foreach(g_dlq, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_dlq_count_reason(g_dlq, 100000), FE_ERANGE) \
  X(INT, fe_dlq_stats(g_dlq, NULL), FE_EINVAL) \
  X(INT, fe_idem_lookup(g_idem, NULL, NULL), FE_EINVAL) \
  X(INT, fe_idem_claim(g_idem, NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_idem_stats(g_idem, NULL), FE_EINVAL) \
  X(INT, fe_saga_start(g_saga, 99, NULL, 0, &g_u64), FE_ESTATE) \
  X(INT, fe_saga_get(g_saga, 1, NULL), FE_EINVAL) \
  X(INT, fe_saga_foreach(g_saga, 0, NULL, NULL), FE_EINVAL) \
  X(INT, fe_saga_define(g_saga, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_saga_stats(g_saga, NULL), FE_EINVAL) \
  X(STR, fe_saga_state_name(12345), 1) \
  X(STR, fe_saga_rec_type_name(12345), 1) \
  X(STR, fe_dlq_kind_name(12345), 1) \
  X(STR, fe_breaker_state_name(-7), 1) \
  X(STR, fe_trading_state_name(-7), 1) \
  X(STR, fe_journal_type_name(0), 1) \
  X(STR, fe_strerror(12345), 1) \
  X(STR, fe_err_name(-12345), 1) \
  X(STR, fe_reason_name(7), 0) \
  X(INT, fe_hist_merge(g_hist, NULL), FE_EINVAL) \
  X(INT, fe_hist_get_config(g_hist, NULL), FE_EINVAL) \
  X(INT, fe_hist_percentile(g_hist, -5.0), 0) \
  X(INT, fe_hist_percentile(g_hist, 1e9), 0) \
  X(STR, fe_audit_decision_name(12345), 1) \
  X(INT, fe_audit_decision_parse("no such decision"), 0) \
  X(STR, fe_audit_bad_name(-3), 1) \
  X(INT, fe_audit_verifier_feed(&g_ver, NULL, NULL, 10, NULL, NULL), FE_EINVAL) \
  X(INT, fe_audit_verify_dir("/nonexistent-fe-dir", NULL, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_audit_verify_dir("/nonexistent-fe-dir", NULL, NULL, NULL, &g_vres), FE_EIO) \
  X(INT, fe_metrics_latency(g_metrics, 5, 0, 1), FE_EINVAL) \
  X(INT, fe_metrics_latency(g_metrics, 0, 77, 1), FE_EINVAL) \
  X(INT, fe_metrics_batch(g_metrics, 5, 0, 1), FE_EINVAL) \
  X(INT, fe_metrics_count(g_metrics, 0, 0, 99, 0), FE_EINVAL) \
  X(INT, fe_metrics_count(g_metrics, 0, 0, FE_METRIC_REJECTED, 100000), 0) \
  X(INT, fe_metrics_gauge(g_metrics, 99, 1), FE_EINVAL) \
  X(INT, fe_metrics_write_prometheus(g_metrics, NULL, 0, NULL), FE_EINVAL) \
  X(INT, fe_metrics_write_json(g_metrics, NULL, 0, &g_size), FE_ERANGE) \
  X(STR, fe_log_level_name(-1), 1) \
  X(INT, fe_log_event(&g_logger, FE_LOG_ERROR, NULL, 0, NULL, NULL), FE_EINVAL) \
  X(INT, fe_log_event(&g_logger, FE_LOG_DEBUG, NULL, 0, NULL, NULL), 0) \
  X(INT, fe_traceparent_format(&g_trace, g_buf), FE_EINVAL) \
  X(INT, fe_traceparent_parse("00-", 3, &g_trace, NULL), FE_ERANGE) \
  X(INT, fe_trace_child(&g_trace, NULL), FE_EINVAL) \
  X(INT, fe_compliance_rules_profile(g_rules, 99), FE_EINVAL) \
  X(INT, fe_compliance_rules_mode(g_rules, 99, FE_MODE_OFF), FE_EINVAL) \
  X(INT, fe_compliance_rules_mode(g_rules, FE_RULE_MAX_QTY, 99), FE_EINVAL) \
  X(INT, fe_compliance_rules_limit(g_rules, 99, 1), FE_EINVAL) \
  X(INT, fe_compliance_rules_limit(g_rules, FE_LIMIT_MAX_QTY, -5), FE_ERANGE) \
  X(INT, fe_compliance_rules_account_limit(g_rules, 1, FE_LIMIT_DUP_WINDOW_NS, 1), FE_EINVAL) \
  X(INT, fe_compliance_rules_symbol_limit(g_rules, NULL, FE_LIMIT_MAX_QTY, 1), FE_EINVAL) \
  X(INT, fe_compliance_rules_restrict(g_rules, NULL), FE_EINVAL) \
  X(INT, fe_compliance_rules_collar(g_rules, NULL, 0, 99, 1), FE_EINVAL) \
  X(INT, fe_compliance_rules_smp(g_rules, 99), FE_EINVAL) \
  X(INT, fe_compliance_rules_fingerprint(g_rules, NULL), FE_EINVAL) \
  X(INT, fe_compliance_rules_copy(g_comp, NULL), FE_EINVAL) \
  X(INT, fe_compliance_apply(g_comp, NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_pin(g_comp, g_fp, 99), FE_EINVAL) \
  X(INT, fe_compliance_fingerprint(g_comp, NULL), FE_EINVAL) \
  X(INT, fe_fingerprint_parse("not hex", &g_fp), FE_EINVAL) \
  X(INT, fe_compliance_check(g_comp, 0, NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_check(g_comp, FE_COMPLIANCE_READERS, &g_ev, NULL), FE_EINVAL) \
  X(INT, fe_compliance_fill(g_comp, 1, "AAA", NULL, 1), FE_EINVAL) \
  X(INT, fe_compliance_fill(g_comp, 1, "AAA", "x", 0), FE_EINVAL) \
  X(INT, fe_compliance_release(g_comp, 1, NULL, "x"), FE_EINVAL) \
  X(INT, fe_compliance_set_reference(g_comp, "AAA", -1), FE_EINVAL) \
  X(INT, fe_compliance_reference(g_comp, NULL), FE_EINVAL) \
  X(INT, fe_compliance_reserved(g_comp, NULL), 0) \
  X(INT, fe_compliance_position(g_comp, 1, NULL), 0) \
  X(INT, fe_compliance_stats(g_comp, NULL), FE_EINVAL) \
  X(INT, fe_compliance_stage(g_comp, NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_md_stage(g_comp, NULL, NULL), FE_EINVAL) \
  X(STR, fe_compliance_rule_name(12345), 0) \
  X(STR, fe_compliance_mode_name(99), 0) \
  X(STR, fe_compliance_limit_name(-1), 0) \
  X(INT, fe_compliance_fix_reason(12345), -1) \
  X(INT, fe_compliance_conf_parse("x", 1, NULL, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_conf_parse("[nowhere]\nk = v\n", 16, NULL, &g_crules, NULL, NULL), FE_EINVAL) \
  X(INT, fe_compliance_conf_load("/nonexistent-fe-dir/c.ini", &g_crules, NULL, NULL), FE_EIO) \
  X(INT, fe_recon_run(&g_rcfg, NULL, 3, NULL, 0, &g_report, NULL), FE_EINVAL) \
  X(INT, fe_recon_parse(NULL, 5, NULL, &g_stmt, NULL), FE_EINVAL) \
  X(INT, fe_recon_parse("x", 1, NULL, NULL, NULL), FE_EINVAL) \
  X(INT, fe_recon_load("/nonexistent-fe-dir/s.txt", &g_stmt, NULL), FE_EIO) \
  X(INT, fe_recon_write("/nonexistent-fe-dir/s.txt", NULL, 20261203, NULL, 0, NULL), FE_EINVAL) \
  X(STR, fe_recon_kind_name(99), 1) \
  X(INT, fe_recon_settle_date(20261203, 5000, &g_u32), FE_ERANGE) \
  X(INT, fe_recon_settle_date(20261399, 1, &g_u32), FE_ERANGE) \
  X(INT, fe_recon_weekday(20261399), FE_ERANGE) \
  API_GARBAGE_KAFKA(X)

#ifdef FE_HAVE_KAFKA
#define API_GARBAGE_KAFKA(X) \
  X(INT, fe_kafka_order_encode(FE_EV_NEW_ORDER, &g_order, 0, g_buf, 4), FE_ERANGE) \
  X(INT, fe_kafka_order_decode(g_buf, 3, NULL, 0, &g_u32, &g_order, NULL), FE_ECORRUPT) \
  X(INT, fe_kafka_order_decode(g_buf, 3, NULL, 0, NULL, &g_order, NULL), FE_EINVAL) \
  X(INT, fe_kafka_outcome_decode(g_buf, 3, &g_kout), FE_ECORRUPT) \
  X(INT, fe_kafka_outcome_decode(g_buf, 3, NULL), FE_EINVAL)
#else
#define API_GARBAGE_KAFKA(X)
#endif

static const row_t k_garbage[] = {
#define ROW(kind, call, expect) {#call, (int64_t)(expect)},
    API_GARBAGE(ROW)
#undef ROW
};
#define N_GARBAGE (sizeof k_garbage / sizeof k_garbage[0])

static int64_t run_garbage(size_t i) {
  size_t k = 0;
#define RUN(kind, call, expect)                                               \
  if (i == k++)                                                               \
    return RUN_##kind(call);
  API_GARBAGE(RUN)
#undef RUN
  return INT64_MIN;
}

static void test_garbage_on_real_objects(void **state) {
  (void)state;
  fe_t_def_init(&g_def, 64);
  g_def.cfg.host_driven = 1;
  fe_t_add_stage(&g_def, "only", pass, NULL, 0);
  g_bus = fe_t_create(&g_def);
  fe_dlq_config_t qc;
  fe_dlq_config_init(&qc);
  qc.capacity = 16;
  assert_fe_ok(fe_dlq_create(&qc, &g_dlq, NULL));
  fe_idem_config_t ic;
  fe_idem_config_init(&ic);
  ic.capacity = 64;
  assert_fe_ok(fe_idem_create(&ic, &g_idem, NULL));
  fe_saga_config_t sc;
  fe_saga_config_init(&sc);
  sc.max_sagas = 4;
  assert_fe_ok(fe_saga_create(&sc, &g_saga, NULL));
  fe_hist_config_t hc;
  fe_hist_config_init(&hc);
  assert_fe_ok(fe_hist_create(&hc, &g_hist, NULL));
  fe_metrics_config_t mc;
  fe_metrics_config_init(&mc);
  assert_fe_ok(fe_metrics_create(&mc, &g_metrics, NULL));
  assert_fe_ok(fe_compliance_rules_create(&g_rules));
  fe_compliance_config_t cc;
  fe_compliance_config_init(&cc);
  cc.max_accounts = cc.max_symbols = 16;
  cc.max_cells = cc.max_orders = 64;
  assert_fe_ok(fe_compliance_create(&cc, g_rules, &g_comp, NULL));
  fe_audit_verifier_init(&g_ver, NULL);
  fe_recon_config_init(&g_rcfg);
  g_logger.fn = sink;
  g_logger.min_level = FE_LOG_INFO;
  int bad = check_rows(k_garbage, N_GARBAGE, run_garbage);
  fe_compliance_destroy(g_comp);
  fe_compliance_rules_destroy(g_rules);
  fe_metrics_destroy(g_metrics);
  fe_hist_destroy(g_hist);
  fe_saga_destroy(g_saga);
  fe_idem_destroy(g_idem);
  fe_dlq_destroy(g_dlq);
  fe_bus_destroy(g_bus);
  if (bad != 0)
    fail_msg("%d of %zu calls with bad arguments broke the rule", bad,
             N_GARBAGE);
}

/* Every FE_API function declared in the public headers has a row. */
static void test_table_is_complete(void **state) {
  (void)state;
  char cmd[640];
  snprintf(cmd, sizeof cmd,
           "ls %s/*.h | grep -v '%s' | xargs cat | tr '\\n' ' ' | "
           "grep -o 'FE_API [^;]*' | "
           "sed -E 's/^FE_API[^(]*[ *](fe_[a-z0-9_]+) *\\(.*/\\1/' | "
           "grep '^fe_' | sort -u",
           FE_INCLUDE_DIR, K_SKIP_HEADERS);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char name[128];
  int missing = 0, n = 0;
  while (fgets(name, sizeof name, p) != NULL) {
    name[strcspn(name, "\n")] = '\0';
    char call[140];
    snprintf(call, sizeof call, "%s(", name);
    int found = 0;
    for (size_t i = 0; i < N_ROWS && !found; i++)
      found = strncmp(k_rows[i].call, call, strlen(call)) == 0;
    if (!found) {
      print_error("no row for %s\n", name);
      missing++;
    }
    n++;
  }
  pclose(p);
  assert_true(n > 150);
  if (missing != 0)
    fail_msg("%d public functions have no row in the NULL table", missing);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_null_everywhere),
      cmocka_unit_test(test_garbage_on_real_objects),
      cmocka_unit_test(test_table_is_complete),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
