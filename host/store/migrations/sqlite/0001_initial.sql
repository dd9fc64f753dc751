-- dvhost store, schema version 1 (SQLite).
-- Ids are TEXT (UUIDs), times INTEGER milliseconds since 1970 UTC, bytes BLOB.
-- Secrets never appear in clear: sealed_* columns hold ciphertext made by
-- dvhost-dataverse, api_keys.hash the SHA-256 of a key.

-- 'dvhs': tells a dvhost store from any other SQLite file.
PRAGMA application_id = 1685481587;

CREATE TABLE store_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    environment_url TEXT NOT NULL,
    entra_tenant_id TEXT,
    client_id TEXT,
    security_role TEXT,
    mode TEXT NOT NULL CHECK (mode IN ('automatic', 'manual')),
    state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'failed', 'deleted')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- A name is reused only once its previous connection is deleted.
CREATE UNIQUE INDEX connections_live_name ON connections (tenant_id, name)
    WHERE state <> 'deleted';

CREATE TABLE connection_history (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (connection_id, seq)
) STRICT;

CREATE TABLE provisioning_steps (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    step TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('started', 'done')),
    detail TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (connection_id, step)
) STRICT;

CREATE TABLE certificates (
    id TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    certificate_pem TEXT NOT NULL,
    sha1_thumbprint TEXT NOT NULL,
    sha256_thumbprint TEXT NOT NULL UNIQUE,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retiring')),
    sealed_private_key BLOB NOT NULL CHECK (length(sealed_private_key) > 0),
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;

CREATE INDEX certificates_by_connection ON certificates (connection_id);
CREATE UNIQUE INDEX certificates_one_active ON certificates (connection_id)
    WHERE state = 'active';

CREATE TABLE components (
    hash BLOB PRIMARY KEY CHECK (length(hash) = 32),
    bytes BLOB NOT NULL,
    size INTEGER NOT NULL CHECK (size = length(bytes)),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE plugins (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    connection_id TEXT REFERENCES connections (id),
    active_version INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (tenant_id, name),
    FOREIGN KEY (id, active_version) REFERENCES plugin_versions (plugin_id, version)
) STRICT;

CREATE INDEX plugins_by_connection ON plugins (connection_id);

CREATE TABLE plugin_versions (
    plugin_id TEXT NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
    version INTEGER NOT NULL CHECK (version > 0),
    component_hash BLOB NOT NULL REFERENCES components (hash),
    grants TEXT NOT NULL,
    limits TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (plugin_id, version)
) STRICT;

CREATE INDEX plugin_versions_by_component ON plugin_versions (component_hash);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hash BLOB NOT NULL CHECK (length(hash) = 32),
    rights TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);

CREATE TABLE sign_ins (
    entra_tenant_id TEXT NOT NULL,
    user_oid TEXT NOT NULL,
    upn TEXT,
    scope TEXT NOT NULL,
    sealed_refresh_token BLOB NOT NULL CHECK (length(sealed_refresh_token) > 0),
    signed_in_at INTEGER NOT NULL,
    PRIMARY KEY (entra_tenant_id, user_oid)
) STRICT;

-- No foreign keys: entries outlive the tenants and plugins they name.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    tenant_id TEXT,
    plugin_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT,
    detail TEXT NOT NULL
) STRICT;

CREATE INDEX audit_by_tenant ON audit_log (tenant_id, seq);
CREATE INDEX audit_by_plugin ON audit_log (plugin_id, seq);
CREATE INDEX audit_by_time ON audit_log (at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
