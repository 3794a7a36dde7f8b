-- The catalog: venues, events, ticket types and coupons.
--
-- Every rule that keeps the catalog sane is a constraint here, so no code path
-- (API, worker, operator with psql) can store an impossible state. Money is an
-- integer count of minor units (cents) plus an ISO 4217 code; never a float.
-- Constraint names are stable: the API maps violations of them to 409/422.

-- True for the IANA time zone names the server knows ("Europe/Berlin"), false for
-- anything else, including POSIX strings ("UTC+5") that AT TIME ZONE would accept.
-- STABLE rather than IMMUTABLE: the zone list changes with tzdata; it is only
-- used in a CHECK, which Postgres evaluates on write.
CREATE FUNCTION is_iana_timezone(tz text) RETURNS boolean
LANGUAGE sql STABLE STRICT AS $$
    SELECT length(tz) BETWEEN 1 AND 64
       AND tz NOT IN ('localtime', 'posixrules', 'Factory')
       AND EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = tz)
$$;

CREATE TABLE venues (
    id          uuid PRIMARY KEY,
    -- Who may edit it (besides admins). Venues are shared: any organizer's event may use one.
    created_by  uuid NOT NULL REFERENCES users (id),
    name        text NOT NULL CONSTRAINT venues_name_check CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    address     text NOT NULL CONSTRAINT venues_address_check CHECK (length(btrim(address)) BETWEEN 1 AND 500),
    city        text NOT NULL CONSTRAINT venues_city_check CHECK (length(btrim(city)) BETWEEN 1 AND 100),
    -- ISO 3166-1 alpha-2.
    country     text NOT NULL CONSTRAINT venues_country_check CHECK (country ~ '^[A-Z]{2}$'),
    timezone    text NOT NULL CONSTRAINT venues_timezone_check CHECK (is_iana_timezone(timezone)),
    -- Lets a search for "berlin" find the events held there.
    search      tsvector GENERATED ALWAYS AS (
                    setweight(to_tsvector('simple'::regconfig, city), 'C')
                    || setweight(to_tsvector('english'::regconfig, name), 'C')
                ) STORED,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX venues_lower_city_idx ON venues (lower(city));
CREATE INDEX venues_created_by_idx ON venues (created_by);
CREATE INDEX venues_search_idx ON venues USING gin (search);

CREATE TABLE events (
    id                  uuid PRIMARY KEY,
    organizer_id        uuid NOT NULL REFERENCES users (id),
    venue_id            uuid REFERENCES venues (id) ON DELETE RESTRICT,
    online              boolean NOT NULL DEFAULT false,
    title               text NOT NULL CONSTRAINT events_title_check CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    description         text NOT NULL DEFAULT '' CONSTRAINT events_description_check CHECK (length(description) <= 10000),
    -- A lower-case slug ("music", "stand-up"), so filtering is an equality.
    category            text NOT NULL CONSTRAINT events_category_check CHECK (category ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(category) <= 50),
    -- The one currency of every price and fixed coupon of the event (ISO 4217).
    -- NULL only until the first ticket type fixes it; publishing needs a ticket type.
    currency            text CONSTRAINT events_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,
    status              text NOT NULL DEFAULT 'draft'
                        CONSTRAINT events_status_check CHECK (status IN ('draft', 'published', 'cancelled', 'completed')),
    -- NULL start: on sale from publication; NULL end: until the event ends.
    sales_start_at      timestamptz,
    sales_end_at        timestamptz,
    -- How long a checkout may hold capacity before paying (DESIGN.md §4).
    hold_minutes        integer NOT NULL DEFAULT 15 CONSTRAINT events_hold_minutes_check CHECK (hold_minutes BETWEEN 1 AND 120),
    max_tickets_per_order integer NOT NULL DEFAULT 10
                        CONSTRAINT events_max_tickets_per_order_check CHECK (max_tickets_per_order BETWEEN 1 AND 100),
    -- Refundable until this many hours before the start; NULL means not refundable.
    refundable_until_hours_before integer
                        CONSTRAINT events_refund_policy_check CHECK (refundable_until_hours_before BETWEEN 0 AND 8760),
    -- Optimistic concurrency: every write does `SET version = version + 1 WHERE version = $seen`.
    version             integer NOT NULL DEFAULT 1 CONSTRAINT events_version_check CHECK (version >= 1),
    published_at        timestamptz,
    cancelled_at        timestamptz,
    -- The venue's city is searched through venues.search, joined at query time.
    search              tsvector GENERATED ALWAYS AS (
                            setweight(to_tsvector('english'::regconfig, title), 'A')
                            || setweight(to_tsvector('english'::regconfig, description || ' ' || replace(category, '-', ' ')), 'B')
                        ) STORED,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT events_schedule_check CHECK (starts_at < ends_at),
    CONSTRAINT events_sales_window_check CHECK (sales_start_at IS NULL OR sales_end_at IS NULL OR sales_start_at < sales_end_at),
    CONSTRAINT events_sales_end_check CHECK (sales_end_at IS NULL OR sales_end_at <= ends_at),
    -- Anything past draft has been public: it needs a place and a currency.
    CONSTRAINT events_location_check CHECK (status = 'draft' OR venue_id IS NOT NULL OR online),
    CONSTRAINT events_public_currency_check CHECK (status = 'draft' OR currency IS NOT NULL),
    CONSTRAINT events_published_at_check CHECK (status = 'draft' OR published_at IS NOT NULL),
    CONSTRAINT events_cancelled_at_check CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    -- Target of the (event, currency) foreign keys that keep one currency per event.
    CONSTRAINT events_id_currency_key UNIQUE (id, currency)
);
CREATE INDEX events_organizer_starts_idx ON events (organizer_id, starts_at, id);
CREATE INDEX events_venue_id_idx ON events (venue_id);
-- The public listing: published and not ended, by start time with the id as tie-break.
CREATE INDEX events_published_starts_idx ON events (starts_at, id) WHERE status = 'published';
CREATE INDEX events_published_category_idx ON events (category, starts_at) WHERE status = 'published';
CREATE INDEX events_search_idx ON events USING gin (search);

CREATE TABLE ticket_types (
    id              uuid PRIMARY KEY,
    event_id        uuid NOT NULL,
    name            text NOT NULL CONSTRAINT ticket_types_name_check CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    description     text NOT NULL DEFAULT '' CONSTRAINT ticket_types_description_check CHECK (length(description) <= 2000),
    price_minor     bigint NOT NULL CONSTRAINT ticket_types_price_check CHECK (price_minor BETWEEN 0 AND 1000000000000),
    currency        text NOT NULL,
    -- The capacity triple the checkout workflow locks (DESIGN.md §5).
    capacity        integer NOT NULL CONSTRAINT ticket_types_capacity_max_check CHECK (capacity BETWEEN 0 AND 1000000),
    sold            integer NOT NULL DEFAULT 0,
    held            integer NOT NULL DEFAULT 0,
    -- NULL: the event's max_tickets_per_order applies.
    max_per_order   integer CONSTRAINT ticket_types_max_per_order_check CHECK (max_per_order BETWEEN 1 AND 100),
    -- NULL: the event's sales window applies.
    sales_start_at  timestamptz,
    sales_end_at    timestamptz,
    sort_order      integer NOT NULL DEFAULT 0 CONSTRAINT ticket_types_sort_order_check CHECK (sort_order BETWEEN -1000000 AND 1000000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT ticket_types_capacity_check CHECK (sold >= 0 AND held >= 0 AND sold + held <= capacity),
    CONSTRAINT ticket_types_sales_window_check CHECK (sales_start_at IS NULL OR sales_end_at IS NULL OR sales_start_at < sales_end_at),
    -- One currency per event: the pair must be the event's own.
    CONSTRAINT ticket_types_event_currency_fkey FOREIGN KEY (event_id, currency)
        REFERENCES events (id, currency) ON DELETE CASCADE,
    -- Target of coupon_ticket_types' (ticket type, event) key.
    CONSTRAINT ticket_types_id_event_key UNIQUE (id, event_id)
);
CREATE UNIQUE INDEX ticket_types_event_name_key ON ticket_types (event_id, lower(name));
CREATE INDEX ticket_types_event_sort_idx ON ticket_types (event_id, sort_order, id);

CREATE TABLE coupons (
    id          uuid PRIMARY KEY,
    event_id    uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    -- Stored as typed; matched case-insensitively (see the unique index).
    code        text NOT NULL CONSTRAINT coupons_code_check CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_-]{2,39}$'),
    kind        text NOT NULL CONSTRAINT coupons_kind_check CHECK (kind IN ('percent', 'fixed')),
    -- percent: 1..100; fixed: minor units of the event's currency.
    value       bigint NOT NULL,
    -- Set exactly for fixed coupons, and then it is the event's currency.
    currency    text,
    -- NULL: unlimited.
    max_uses    integer CONSTRAINT coupons_max_uses_check CHECK (max_uses >= 1),
    used        integer NOT NULL DEFAULT 0,
    valid_from  timestamptz,
    valid_until timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT coupons_value_check CHECK (
        (kind = 'percent' AND value BETWEEN 1 AND 100 AND currency IS NULL)
        OR (kind = 'fixed' AND value BETWEEN 1 AND 1000000000000 AND currency IS NOT NULL)
    ),
    CONSTRAINT coupons_used_check CHECK (used >= 0 AND (max_uses IS NULL OR used <= max_uses)),
    CONSTRAINT coupons_validity_check CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_from < valid_until),
    CONSTRAINT coupons_event_currency_fkey FOREIGN KEY (event_id, currency) REFERENCES events (id, currency),
    CONSTRAINT coupons_id_event_key UNIQUE (id, event_id)
);
CREATE UNIQUE INDEX coupons_event_code_key ON coupons (event_id, lower(code));

-- A coupon with rows here applies only to those ticket types; with none, to all.
-- Both keys carry the event id, so a coupon can only name its own event's types.
CREATE TABLE coupon_ticket_types (
    coupon_id       uuid NOT NULL,
    ticket_type_id  uuid NOT NULL,
    event_id        uuid NOT NULL,
    PRIMARY KEY (coupon_id, ticket_type_id),
    CONSTRAINT coupon_ticket_types_coupon_fkey FOREIGN KEY (coupon_id, event_id)
        REFERENCES coupons (id, event_id) ON DELETE CASCADE,
    -- Not cascading: deleting a type silently would widen the coupon to every other
    -- type. Deferred to commit so that deleting a draft event, which cascades to
    -- both coupons and ticket types in no fixed order, still succeeds.
    CONSTRAINT coupon_ticket_types_ticket_type_fkey FOREIGN KEY (ticket_type_id, event_id)
        REFERENCES ticket_types (id, event_id) ON DELETE NO ACTION DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX coupon_ticket_types_ticket_type_idx ON coupon_ticket_types (ticket_type_id);
