-- The state store as schema version 2 created it (before the retention indexes):
-- `sqlite3 .dump` of a fresh database, for tests/sync/test_retention.py's migration test.
BEGIN TRANSACTION;
CREATE TABLE bookmarks (
	sync VARCHAR(200) NOT NULL, 
	source VARCHAR(200) NOT NULL, 
	bookmark JSON NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (sync, source)
);
CREATE TABLE identity_conflicts (
	id INTEGER NOT NULL, 
	kind VARCHAR(64) NOT NULL, 
	value VARCHAR(512) NOT NULL, 
	limit_kind VARCHAR(64) NOT NULL, 
	"limit" INTEGER NOT NULL, 
	customer_id VARCHAR(40) NOT NULL, 
	other_customer_id VARCHAR(40) NOT NULL, 
	sides JSON NOT NULL, 
	message_id VARCHAR(200) NOT NULL, 
	event_time DATETIME NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_conflict UNIQUE (kind, value, customer_id, other_customer_id)
);
CREATE TABLE identity_customers (
	customer_id VARCHAR(40) NOT NULL, 
	traits TEXT NOT NULL, 
	trait_stamps TEXT NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (customer_id)
);
CREATE TABLE identity_identifiers (
	kind VARCHAR(64) NOT NULL, 
	value VARCHAR(512) NOT NULL, 
	customer_id VARCHAR(40) NOT NULL, 
	first_seen_us BIGINT NOT NULL, 
	last_seen_us BIGINT NOT NULL, 
	PRIMARY KEY (kind, value)
);
CREATE TABLE identity_lock (
	id INTEGER NOT NULL, 
	version BIGINT NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE identity_merges (
	from_customer_id VARCHAR(40) NOT NULL, 
	into_customer_id VARCHAR(40) NOT NULL, 
	merged_at DATETIME NOT NULL, 
	PRIMARY KEY (from_customer_id)
);
CREATE TABLE inbox (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	message_id VARCHAR(100) NOT NULL, 
	received_at DATETIME NOT NULL, 
	channel VARCHAR(20) NOT NULL, 
	raw TEXT NOT NULL, 
	UNIQUE (message_id)
);
CREATE TABLE locks (
	name VARCHAR(200) NOT NULL, 
	holder VARCHAR(200) NOT NULL, 
	expires_at DATETIME NOT NULL, 
	PRIMARY KEY (name)
);
CREATE TABLE rejected_rows (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	sync VARCHAR(200) NOT NULL, 
	stage VARCHAR(40) NOT NULL, 
	destination VARCHAR(200), 
	source_ref VARCHAR(1000) NOT NULL, 
	"key" VARCHAR(400), 
	field VARCHAR(400), 
	reason TEXT NOT NULL, 
	payload JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	retried_at DATETIME, 
	PRIMARY KEY (id)
);
CREATE TABLE runs (
	id INTEGER NOT NULL, 
	sync VARCHAR(200) NOT NULL, 
	started_at DATETIME NOT NULL, 
	ended_at DATETIME, 
	status VARCHAR(20) NOT NULL, 
	dry_run BOOLEAN NOT NULL, 
	counts JSON NOT NULL, 
	api_calls JSON NOT NULL, 
	errors JSON NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE schema_version (
	version INTEGER NOT NULL, 
	applied_at DATETIME NOT NULL, 
	PRIMARY KEY (version)
);
INSERT INTO "schema_version" VALUES(1,'2026-12-05 02:54:22.050061');
INSERT INTO "schema_version" VALUES(2,'2026-12-05 02:54:22.053360');
CREATE TABLE sent_ledger (
	destination VARCHAR(200) NOT NULL, 
	"key" VARCHAR(400) NOT NULL, 
	action VARCHAR(100) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	sync VARCHAR(200) NOT NULL, 
	run_id INTEGER NOT NULL, 
	source_ref VARCHAR(1000) NOT NULL, 
	acknowledged_at DATETIME, 
	PRIMARY KEY (destination, "key")
);
CREATE TABLE trigger_activity (
	customer_id VARCHAR(400) NOT NULL, 
	journal_id VARCHAR(64) NOT NULL, 
	min_time BIGINT NOT NULL, 
	max_time BIGINT NOT NULL, 
	items BLOB NOT NULL, 
	PRIMARY KEY (customer_id, journal_id)
);
CREATE TABLE trigger_clock (
	name VARCHAR(40) NOT NULL, 
	value BIGINT NOT NULL, 
	PRIMARY KEY (name)
);
CREATE TABLE trigger_instances (
	instance_id VARCHAR(64) NOT NULL, 
	"trigger" VARCHAR(100) NOT NULL, 
	customer_id VARCHAR(400) NOT NULL, 
	entity_key VARCHAR(400) NOT NULL, 
	start_message_id VARCHAR(400) NOT NULL, 
	start_time BIGINT NOT NULL, 
	due_at BIGINT NOT NULL, 
	planned_due BIGINT NOT NULL, 
	priority INTEGER NOT NULL, 
	parent_id VARCHAR(64), 
	start BLOB NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	reason VARCHAR(40), 
	detail TEXT, 
	emission BLOB, 
	delivery VARCHAR(20), 
	decided_at BIGINT, 
	cancel_time BIGINT, 
	cancel_message_id VARCHAR(400), 
	cancel_event VARCHAR(200), 
	cancel_also_start BOOLEAN, 
	PRIMARY KEY (instance_id)
);
CREATE TABLE trigger_journal (
	seq INTEGER NOT NULL, 
	journal_id VARCHAR(64) NOT NULL, 
	kind VARCHAR(10) NOT NULL, 
	min_time BIGINT NOT NULL, 
	max_time BIGINT NOT NULL, 
	entries BLOB NOT NULL, 
	starts BLOB, 
	PRIMARY KEY (seq), 
	UNIQUE (journal_id)
);
CREATE INDEX ix_rejected_rows_run_id ON rejected_rows (run_id);
CREATE INDEX ix_rejected_rows_sync ON rejected_rows (sync);
CREATE INDEX ix_runs_sync ON runs (sync);
CREATE INDEX ix_trigger_instances_fired ON trigger_instances (customer_id, due_at) WHERE status = 'fired';
CREATE INDEX ix_trigger_instances_due ON trigger_instances (status, due_at);
CREATE INDEX ix_trigger_instances_undelivered ON trigger_instances (due_at) WHERE delivery = 'pending';
CREATE INDEX ix_trigger_instances_marked ON trigger_instances (cancel_time) WHERE status = 'pending' AND cancel_time IS NOT NULL;
CREATE INDEX ix_trigger_instances_pending ON trigger_instances (customer_id, due_at) WHERE status = 'pending';
CREATE INDEX ix_trigger_journal_time ON trigger_journal (kind, max_time);
CREATE INDEX ix_identity_identifiers_customer_id ON identity_identifiers (customer_id);
CREATE INDEX ix_identity_merges_into_customer_id ON identity_merges (into_customer_id);
CREATE INDEX ix_identity_conflicts_customer_id ON identity_conflicts (customer_id);
CREATE INDEX ix_trigger_activity_time ON trigger_activity (max_time);
DELETE FROM "sqlite_sequence";
COMMIT;
