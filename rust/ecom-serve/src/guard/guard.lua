-- The Guard's live state in Redis: one call (EVALSHA) updates it for a whole batch of events,
-- atomically, and returns the numbers the rules in guard.rs decide on. No policy lives here:
-- thresholds are applied in Rust, and which events count as a failed login, a small purchase
-- or a bulk add to cart arrives as flags.
--
-- NOT FOR REDIS CLUSTER: key names are built here from ARGV (the prefix and each event's ip,
-- user, session, product), so the script touches keys it does not declare in KEYS. That is
-- fine on a single Redis (with or without replicas); Redis Cluster requires every key a
-- script touches to be declared and in one hash slot, which per-IP and per-user keys cannot be.
--
-- Windows follow the events' own time (event_time_ms), so replaying a stream gives the same
-- numbers. TTLs are wall-clock and only bound memory: two windows plus a minute for windowed
-- keys, the idle time for a session's timing hash.
--
-- ARGV: prefix, rate_window_ms, burst_window_ms, scraping_window_ms, session_idle_ms,
--   fast_gap_ms, live_counts (1 keeps the live counts below, 0 not), then six per event: event_time_ms, ip, user_id, session_id, product_id, flags
--   (flags: 1 failed login, 2 small purchase, 4 bulk add to cart; empty strings mean absent).
-- Returns 12 integers per event, in order (Signals::from_script in guard.rs reads them):
--   ip_rate, user_rate, session_rate, failed_users_per_ip, failed_ips_per_user,
--   small_purchase_sessions_per_ip, bulk_cart_sessions, products_per_ip, gaps,
--   gap_cv_milli (-1 until two gaps), fast_gaps,
--   lists (bits: 1 ip blocked, 2 ip allowed, 4 user blocked, 8 user allowed).
--
-- Keys, all under the prefix: counters rate:{ip,user,session}:<id>:<window>; HyperLogLogs
-- failed_users:ip:<ip>:<window>, failed_ips:user:<user>:<window>,
-- card_sessions:ip:<ip>:<window>, bulk_cart:product:<product>:<window>,
-- products:ip:<ip>:<window>; the hash timing:session:<session>; and the sets block:ip,
-- allow:ip, block:user, allow:user, which operators maintain (no TTL).
--
-- Beside the security state, the shop's live counts, which no rule reads (ecom dashboard
-- does): the HyperLogLog live:visitors:<minute of event time> of each minute's distinct
-- visitors (the user, else the IP), kept 25 h; and the sorted set live:sessions of sessions by
-- their newest event time, trimmed to the ones whose newest event is within session_idle_ms of
-- the newest event seen: the sessions open now, as the job's session gap closes them.

local P = ARGV[1]
local RATE = tonumber(ARGV[2])
local BURST = tonumber(ARGV[3])
local SCRAPE = tonumber(ARGV[4])
local IDLE = tonumber(ARGV[5])
local FAST = tonumber(ARGV[6])
local LIVE = ARGV[7] == '1'
local HEAD, FIELDS = 7, 6
local SLACK_MS = 60000
local LIVE_TTL_MS = 25 * 3600 * 1000

local function key(...)
  return table.concat({ P, ... }, ':')
end

-- Two fixed windows, the previous one weighted by the share of it the sliding window still
-- covers: the classic sliding-window approximation, with two small keys per counter.
local function sliding(name, id, t, window, add)
  local w = math.floor(t / window)
  local cur = key(name, id, w)
  local c
  if add then
    c = redis.call('INCR', cur)
    if c == 1 then
      redis.call('PEXPIRE', cur, 2 * window + SLACK_MS)
    end
  else
    c = tonumber(redis.call('GET', cur)) or 0
  end
  local prev = tonumber(redis.call('GET', key(name, id, w - 1))) or 0
  local covered = window - (t - w * window)
  return c + math.floor(prev * covered / window)
end

-- Distinct members over the current and the previous fixed window: their union, so a member
-- seen in both counts once. PFCOUNT of one key is cached by Redis while a union is merged on
-- every call, so the union is asked for only when the previous window exists.
local function distinct(name, id, t, window, member)
  local w = math.floor(t / window)
  local cur = key(name, id, w)
  if member then
    if redis.call('PFADD', cur, member) == 1 then
      redis.call('PEXPIRE', cur, 2 * window + SLACK_MS)
    end
  end
  local prev = key(name, id, w - 1)
  if redis.call('EXISTS', prev) == 1 then
    return redis.call('PFCOUNT', cur, prev)
  end
  return redis.call('PFCOUNT', cur)
end

-- A batch repeats the same IPs and users; ask each set once per call.
local memo = {}
local function listed(list, kind, id)
  local k = list .. ':' .. kind .. '\0' .. id
  local v = memo[k]
  if v == nil then
    v = redis.call('SISMEMBER', key(list, kind), id) == 1
    memo[k] = v
  end
  return v
end

-- Running count, mean and M2 (Welford) of a session's gaps between events, so the
-- coefficient of variation needs no history. An event older than the session's newest gives
-- no gap (it arrived out of order) but still renews the idle TTL.
local function timing(session, t)
  local k = key('timing', 'session', session)
  local h = redis.call('HMGET', k, 'last', 'n', 'mean', 'm2', 'fast')
  local last = tonumber(h[1])
  local n = tonumber(h[2]) or 0
  local mean = tonumber(h[3]) or 0
  local m2 = tonumber(h[4]) or 0
  local fast = tonumber(h[5]) or 0
  if last == nil then
    last = t
  elseif t >= last then
    local g = t - last
    n = n + 1
    local d = g - mean
    mean = mean + d / n
    m2 = m2 + d * (g - mean)
    if g < FAST then
      fast = fast + 1
    end
    last = t
  end
  redis.call('HSET', k, 'last', last, 'n', n, 'mean', mean, 'm2', m2, 'fast', fast)
  redis.call('PEXPIRE', k, IDLE)
  local cv = -1
  if n >= 2 then
    if mean > 0 then
      cv = math.min(math.floor(1000 * math.sqrt(math.max(m2, 0) / (n - 1)) / mean), 1000000000)
    else
      -- Every gap zero: as regular as timing gets.
      cv = 0
    end
  end
  return n, cv, fast
end

local out = {}
local events = (#ARGV - HEAD) / FIELDS
local live_sessions = key('live', 'sessions')
local visitor_minutes = {}
for i = 0, events - 1 do
  local b = HEAD + i * FIELDS
  local t = tonumber(ARGV[b + 1])
  local ip, user, session, product = ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
  local flags = tonumber(ARGV[b + 6])
  local failed = flags % 2 == 1
  local small = math.floor(flags / 2) % 2 == 1
  local bulk = math.floor(flags / 4) % 2 == 1
  local has_user, has_session, has_product = user ~= '', session ~= '', product ~= ''

  local ip_rate = sliding('rate:ip', ip, t, RATE, true)
  local user_rate, session_rate = 0, 0
  if has_user then
    user_rate = sliding('rate:user', user, t, RATE, true)
  end
  if has_session then
    session_rate = sliding('rate:session', session, t, RATE, true)
  end

  local failed_users = distinct('failed_users:ip', ip, t, BURST, (failed and has_user) and user or nil)
  local failed_ips = 0
  if has_user then
    failed_ips = distinct('failed_ips:user', user, t, BURST, failed and ip or nil)
  end

  -- One checkout of several cheap lines is one session: count sessions, not lines.
  local small_member = nil
  if small then
    small_member = has_session and session or ('event:' .. t .. ':' .. i)
  end
  local small_sessions = distinct('card_sessions:ip', ip, t, BURST, small_member)

  local bulk_sessions = 0
  if bulk and has_product then
    bulk_sessions = distinct('bulk_cart:product', product, t, BURST, has_session and session or ip)
  end

  local products = 0
  if has_product then
    products = distinct('products:ip', ip, t, SCRAPE, product)
  end

  local gaps, cv, fast = 0, -1, 0
  if has_session then
    gaps, cv, fast = timing(session, t)
  end

  local lists = 0
  if listed('block', 'ip', ip) then lists = lists + 1 end
  if listed('allow', 'ip', ip) then lists = lists + 2 end
  if has_user then
    if listed('block', 'user', user) then lists = lists + 4 end
    if listed('allow', 'user', user) then lists = lists + 8 end
  end

  if LIVE then
    local minute = math.floor(t / 60000)
    local visitors = visitor_minutes[minute]
    if visitors == nil then
      visitors = key('live', 'visitors', minute)
      visitor_minutes[minute] = visitors
    end
    redis.call('PFADD', visitors, has_user and user or ('ip:' .. ip))
    if has_session then
      redis.call('ZADD', live_sessions, 'GT', t, session)
    end
  end

  local n = #out
  out[n + 1] = ip_rate
  out[n + 2] = user_rate
  out[n + 3] = session_rate
  out[n + 4] = failed_users
  out[n + 5] = failed_ips
  out[n + 6] = small_sessions
  out[n + 7] = bulk_sessions
  out[n + 8] = products
  out[n + 9] = gaps
  out[n + 10] = cv
  out[n + 11] = fast
  out[n + 12] = lists
end

if LIVE then
  for _, visitors in pairs(visitor_minutes) do
    redis.call('PEXPIRE', visitors, LIVE_TTL_MS)
  end
  local newest = redis.call('ZRANGE', live_sessions, -1, -1, 'WITHSCORES')
  if newest[2] ~= nil then
    redis.call('ZREMRANGEBYSCORE', live_sessions, '-inf', '(' .. (tonumber(newest[2]) - IDLE))
    redis.call('PEXPIRE', live_sessions, LIVE_TTL_MS)
  end
end
return out
