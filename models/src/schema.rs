// The Diesel view of migrations/. Keep in step with the SQL: one `table!` per table,
// columns in the order of the CREATE TABLE.

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        display_name -> Text,
        password_hash -> Text,
        roles -> Array<Text>,
        disabled_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        notify_reminders -> Bool,
        notify_messages -> Bool,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        last_used_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        session_id -> Uuid,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        actor_id -> Nullable<Uuid>,
        action -> Text,
        target_type -> Text,
        target_id -> Text,
        details -> Jsonb,
        request_id -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));

diesel::table! {
    scheduled_job_runs (id) {
        id -> Int8,
        job -> Text,
        scheduled_for -> Timestamptz,
        worker -> Text,
        affected_rows -> Int8,
        finished_at -> Timestamptz,
    }
}

// The catalog (migrations/2026-11-22-000002_catalog). The generated `search`
// tsvector columns of venues and events are left out: Diesel has no type for them,
// nothing may write them, and only the raw-SQL search in events.rs reads them.

diesel::table! {
    venues (id) {
        id -> Uuid,
        created_by -> Uuid,
        name -> Text,
        address -> Text,
        city -> Text,
        country -> Text,
        timezone -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    events (id) {
        id -> Uuid,
        organizer_id -> Uuid,
        venue_id -> Nullable<Uuid>,
        online -> Bool,
        title -> Text,
        description -> Text,
        category -> Text,
        currency -> Nullable<Text>,
        starts_at -> Timestamptz,
        ends_at -> Timestamptz,
        status -> Text,
        sales_start_at -> Nullable<Timestamptz>,
        sales_end_at -> Nullable<Timestamptz>,
        hold_minutes -> Int4,
        max_tickets_per_order -> Int4,
        refundable_until_hours_before -> Nullable<Int4>,
        version -> Int4,
        published_at -> Nullable<Timestamptz>,
        cancelled_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        max_tickets_per_participant -> Nullable<Int4>,
        waitlist_enabled -> Bool,
        waitlist_offer_minutes -> Int4,
        reminder_offsets_minutes -> Array<Int4>,
    }
}

diesel::table! {
    /// A view: the row of `ticket_type_rows` with its counts summed from
    /// `ticket_type_sales` (`sold`, `held` = `taken` − `sold`, the tickets').
    ticket_types (id) {
        id -> Uuid,
        event_id -> Uuid,
        name -> Text,
        description -> Text,
        price_minor -> Int8,
        currency -> Text,
        capacity -> Int4,
        sold -> Int4,
        held -> Int4,
        max_per_order -> Nullable<Int4>,
        sales_start_at -> Nullable<Timestamptz>,
        sales_end_at -> Nullable<Timestamptz>,
        sort_order -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
        waiting_units -> Int4,
        tickets_issued -> Int8,
        tickets_paid_minor -> Int8,
        tickets_checked_in -> Int8,
        tickets_voided -> Int8,
        taken -> Int4,
    }
}

diesel::table! {
    /// The table under the view `ticket_types`, as the writers of its free
    /// units (holds, releases, direct sales, refunds) see it.
    ticket_type_rows (id) {
        id -> Uuid,
        price_minor -> Int8,
        currency -> Text,
        capacity -> Int4,
        waiting_units -> Int4,
        taken -> Int4,
    }
}

diesel::table! {
    coupons (id) {
        id -> Uuid,
        event_id -> Uuid,
        code -> Text,
        kind -> Text,
        value -> Int8,
        currency -> Nullable<Text>,
        max_uses -> Nullable<Int4>,
        used -> Int4,
        valid_from -> Nullable<Timestamptz>,
        valid_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    coupon_ticket_types (coupon_id, ticket_type_id) {
        coupon_id -> Uuid,
        ticket_type_id -> Uuid,
        event_id -> Uuid,
    }
}

diesel::joinable!(events -> venues (venue_id));
diesel::joinable!(events -> users (organizer_id));
diesel::joinable!(ticket_types -> events (event_id));
diesel::joinable!(coupons -> events (event_id));
diesel::joinable!(coupon_ticket_types -> coupons (coupon_id));
diesel::joinable!(coupon_ticket_types -> ticket_types (ticket_type_id));

diesel::table! {
    workflow_runs (id) {
        id -> Uuid,
        kind -> Text,
        status -> Text,
        step -> Text,
        state -> Jsonb,
        version -> Int4,
        wake_at -> Nullable<Timestamptz>,
        pending_effect -> Nullable<Jsonb>,
        attempts -> Int4,
        last_error -> Nullable<Jsonb>,
        correlation_id -> Nullable<Text>,
        owner_id -> Nullable<Uuid>,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Bytea>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        view -> Jsonb,
        parent_id -> Nullable<Uuid>,
        child_key -> Nullable<Text>,
    }
}

diesel::table! {
    workflow_steps (id) {
        id -> Int8,
        run_id -> Uuid,
        step -> Text,
        attempt -> Int4,
        input -> Text,
        outcome -> Text,
        error -> Nullable<Text>,
        version -> Int4,
        started_at -> Timestamptz,
        finished_at -> Timestamptz,
    }
}

diesel::table! {
    workflow_signals (id) {
        id -> Int8,
        run_id -> Uuid,
        name -> Text,
        dedupe_key -> Text,
        payload -> Jsonb,
        received_at -> Timestamptz,
        consumed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        queue -> Text,
        payload -> Jsonb,
        available_at -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    holds (id) {
        id -> Uuid,
        run_id -> Uuid,
        ticket_type_id -> Uuid,
        quantity -> Int4,
        expires_at -> Timestamptz,
        status -> Text,
        created_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    coupon_reservations (run_id) {
        run_id -> Uuid,
        coupon_id -> Uuid,
        status -> Text,
        created_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    bookings (id) {
        id -> Uuid,
        run_id -> Uuid,
        user_id -> Uuid,
        event_id -> Uuid,
        status -> Text,
        currency -> Text,
        subtotal_minor -> Int8,
        discount_minor -> Int8,
        total_minor -> Int8,
        coupon_id -> Nullable<Uuid>,
        payment_intent_id -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        refunded_minor -> Int8,
    }
}

diesel::table! {
    tickets (id) {
        id -> Uuid,
        booking_id -> Uuid,
        event_id -> Uuid,
        ticket_type_id -> Uuid,
        number -> Text,
        status -> Text,
        qr_payload -> Text,
        checked_in_at -> Nullable<Timestamptz>,
        checked_in_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        paid_minor -> Int8,
        refund_run_id -> Nullable<Uuid>,
        refunded_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    refunds (run_id) {
        run_id -> Uuid,
        booking_id -> Uuid,
        amount_minor -> Int8,
        currency -> Text,
        tickets -> Int4,
        requested_by -> Text,
        status -> Text,
        provider_refund_id -> Nullable<Text>,
        reason -> Nullable<Text>,
        created_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    notifications (id) {
        id -> Uuid,
        dedupe_key -> Text,
        kind -> Text,
        recipient -> Text,
        subject -> Text,
        body_text -> Text,
        status -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        user_id -> Nullable<Uuid>,
        context -> Jsonb,
        read_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(workflow_steps -> workflow_runs (run_id));
diesel::joinable!(refunds -> bookings (booking_id));
diesel::joinable!(workflow_signals -> workflow_runs (run_id));
diesel::joinable!(holds -> workflow_runs (run_id));
diesel::joinable!(holds -> ticket_types (ticket_type_id));
diesel::joinable!(bookings -> workflow_runs (run_id));
diesel::joinable!(tickets -> bookings (booking_id));
diesel::joinable!(bookings -> events (event_id));

diesel::table! {
    waitlist_entries (id) {
        id -> Uuid,
        event_id -> Uuid,
        ticket_type_id -> Uuid,
        participant_id -> Uuid,
        quantity -> Int4,
        priority -> Text,
        status -> Text,
        joined_at -> Timestamptz,
        blocked_since -> Nullable<Timestamptz>,
        offer_run_id -> Nullable<Uuid>,
        offered_at -> Nullable<Timestamptz>,
        offer_expires_at -> Nullable<Timestamptz>,
        checkout_run_id -> Nullable<Uuid>,
        ended_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(waitlist_entries -> ticket_types (ticket_type_id));
diesel::joinable!(waitlist_entries -> events (event_id));
diesel::joinable!(waitlist_entries -> users (participant_id));
diesel::joinable!(notifications -> users (user_id));

diesel::table! {
    event_reminders (event_id, offset_minutes) {
        event_id -> Uuid,
        offset_minutes -> Int4,
        run_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    organizer_messages (id) {
        id -> Uuid,
        event_id -> Uuid,
        author_id -> Uuid,
        subject -> Text,
        body -> Text,
        send_at -> Timestamptz,
        run_id -> Uuid,
        created_at -> Timestamptz,
        cancelled_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(event_reminders -> events (event_id));
diesel::joinable!(organizer_messages -> events (event_id));

// Organizer analytics (migrations/2026-12-01-000010_analytics): counters kept by
// triggers in the transactions that write the ledger; read by analytics.rs.

diesel::table! {
    analytics_sales_slots (event_id, slot_start, currency, shard) {
        event_id -> Uuid,
        currency -> Text,
        slot_start -> Timestamptz,
        orders -> Int8,
        tickets -> Int8,
        subtotal_minor -> Int8,
        discount_minor -> Int8,
        paid_minor -> Int8,
        shard -> Int2,
    }
}

diesel::table! {
    analytics_sales_history (event_id, slot_start, currency) {
        event_id -> Uuid,
        currency -> Text,
        slot_start -> Timestamptz,
        orders -> Int8,
        tickets -> Int8,
        subtotal_minor -> Int8,
        discount_minor -> Int8,
        paid_minor -> Int8,
    }
}

diesel::table! {
    analytics_sales_history_totals (event_id, currency) {
        event_id -> Uuid,
        currency -> Text,
        orders -> Int8,
        tickets -> Int8,
        subtotal_minor -> Int8,
        discount_minor -> Int8,
        paid_minor -> Int8,
    }
}

diesel::table! {
    analytics_refund_slots (event_id, slot_start, currency) {
        event_id -> Uuid,
        currency -> Text,
        slot_start -> Timestamptz,
        refunds -> Int8,
        refunded_minor -> Int8,
    }
}

diesel::table! {
    analytics_refunds (event_id, requested_by, currency) {
        event_id -> Uuid,
        requested_by -> Text,
        currency -> Text,
        refunds -> Int8,
        refunded_minor -> Int8,
    }
}

diesel::table! {
    analytics_coupons (coupon_id) {
        coupon_id -> Uuid,
        event_id -> Uuid,
        uses -> Int8,
        discount_minor -> Int8,
    }
}

diesel::table! {
    analytics_checkouts (event_id, outcome, shard) {
        event_id -> Uuid,
        outcome -> Text,
        shard -> Int2,
        runs -> Int8,
    }
}

// Every table may meet every other in a query (one list, so no pair is missed).
diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    refresh_tokens,
    audit_log,
    scheduled_job_runs,
    venues,
    events,
    ticket_types,
    ticket_type_rows,
    coupons,
    coupon_ticket_types,
    workflow_runs,
    workflow_steps,
    workflow_signals,
    outbox,
    holds,
    coupon_reservations,
    bookings,
    tickets,
    notifications,
    refunds,
    waitlist_entries,
    event_reminders,
    organizer_messages,
    analytics_sales_history,
    analytics_sales_history_totals,
    analytics_sales_slots,
    analytics_refund_slots,
    analytics_refunds,
    analytics_coupons,
    analytics_checkouts,
);
