-- Replicas learn of each other's writes: every committed change of what
-- their caches hold is announced on the channel `registry_changes`
-- (PgStore::change_feed listens). Payloads: `r:<repository>` (tags,
-- manifests, blob links), `n:<namespace>` (namespaces and their policies),
-- `a` (users, service accounts, tokens, bindings, signing keys). NOTIFY is
-- delivered at commit, never for a rolled-back write, and identical
-- payloads of one transaction are delivered once.

CREATE FUNCTION registry_notify_repository() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('registry_changes', 'r:' || OLD.repository);
    ELSE
        PERFORM pg_notify('registry_changes', 'r:' || NEW.repository);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION registry_notify_namespace() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('registry_changes', 'n:' || (to_jsonb(OLD) ->> TG_ARGV[0]));
    ELSE
        PERFORM pg_notify('registry_changes', 'n:' || (to_jsonb(NEW) ->> TG_ARGV[0]));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION registry_notify_auth() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('registry_changes', 'a');
    RETURN NULL;
END $$;

CREATE TRIGGER manifests_notify AFTER INSERT OR UPDATE OR DELETE ON manifests
    FOR EACH ROW EXECUTE FUNCTION registry_notify_repository();
CREATE TRIGGER tags_notify AFTER INSERT OR UPDATE OR DELETE ON tags
    FOR EACH ROW EXECUTE FUNCTION registry_notify_repository();
CREATE TRIGGER blob_links_notify AFTER INSERT OR UPDATE OR DELETE ON blob_links
    FOR EACH ROW EXECUTE FUNCTION registry_notify_repository();

CREATE TRIGGER namespaces_notify AFTER INSERT OR UPDATE OR DELETE ON namespaces
    FOR EACH ROW EXECUTE FUNCTION registry_notify_namespace('name');
CREATE TRIGGER namespace_policies_notify AFTER INSERT OR UPDATE OR DELETE ON namespace_policies
    FOR EACH ROW EXECUTE FUNCTION registry_notify_namespace('namespace');

-- Token use (`last_used`) is not a change anyone caches: only rows coming
-- and going count for tokens.
CREATE TRIGGER users_notify AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_auth();
CREATE TRIGGER service_accounts_notify AFTER INSERT OR UPDATE OR DELETE ON service_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_auth();
CREATE TRIGGER access_tokens_notify AFTER INSERT OR DELETE ON access_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_auth();
CREATE TRIGGER refresh_tokens_notify AFTER INSERT OR DELETE ON refresh_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_auth();
CREATE TRIGGER role_bindings_notify AFTER INSERT OR UPDATE OR DELETE ON role_bindings
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_auth();
CREATE TRIGGER cluster_role_bindings_notify AFTER INSERT OR UPDATE OR DELETE ON cluster_role_bindings
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_auth();
CREATE TRIGGER token_signing_keys_notify AFTER INSERT OR UPDATE OR DELETE ON token_signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify_auth();
