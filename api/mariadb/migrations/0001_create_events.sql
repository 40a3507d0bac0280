-- Events recorded by POST /app. created_at is always UTC: the API sends UTC
-- values and pins the session time zone to +00:00.
CREATE TABLE IF NOT EXISTS events (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    created_at DATETIME(6) NOT NULL,
    -- Random per request, never from the client: a retry after an error
    -- whose outcome is unknown finds its own earlier row by this token.
    request_token BINARY(16) NOT NULL,
    -- The client's Idempotency-Key header; NULL when absent, and a unique
    -- index ignores NULLs, so only keyed requests are deduplicated.
    idempotency_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
    node VARCHAR(255) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY events_request_token (request_token),
    UNIQUE KEY events_idempotency_key (idempotency_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
