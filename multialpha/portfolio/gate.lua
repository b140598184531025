-- The portfolio gate: the ONLY writer of {ns}:portfolio:* and the order claims.
-- Runs atomically inside Redis, so N worker processes can never interleave a
-- check with a reserve. Time (now, trading day) comes from the caller's clock.
--
-- KEYS: 1 claim hash (orders:id:<id>)   2 pending set   3 journal stream
--       4 open-position set             5 halt key      6 day hash (portfolio:day:<D>)
--       7 position hash (portfolio:pos:<strategy>:<symbol>)
-- ARGV: 1 op (submit|mark|release|pnl)  2 trading day  3 now (ISO UTC)
--       4 max_positions  5 daily stop (positive $)  6 position key prefix
--       7 order_id  8 kind (entry|exit)  9 strategy  10 symbol  11 dir (1|-1)
--       12 quantity  13 price  14 contract  15 multiplier  16 commission/side
--       17 journal maxlen  18 claim ttl (s)  19 entry time (bar start, ISO UTC)
--       20.. journal field/value pairs

local op = ARGV[1]
local day, now = ARGV[2], ARGV[3]
local limit = tonumber(ARGV[5])
local prefix = ARGV[6]
local DAY_TTL = 8 * 86400

-- Realised + open P&L of trading day `day`. A position's day P&L runs from
-- its reference price (entry, or the last mark of the previous day).
local function day_pnl()
  local pnl = tonumber(redis.call('HGET', KEYS[6], 'realized') or '0')
  for _, pid in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    local p = redis.call('HMGET', prefix .. pid, 'ref_day', 'ref_price', 'mark', 'dir', 'quantity', 'mult')
    if p[1] == day and p[3] then
      pnl = pnl + tonumber(p[4]) * tonumber(p[5]) * tonumber(p[6]) * (tonumber(p[3]) - tonumber(p[2]))
    end
  end
  return pnl
end

-- Latch the stop for the rest of the trading day once P&L reaches -limit.
local function check_stop(pnl)
  if redis.call('HGET', KEYS[6], 'stopped') == '1' then return true end
  if pnl <= -limit then
    redis.call('HSET', KEYS[6], 'stopped', '1', 'stopped_at', now, 'stop_pnl', tostring(pnl))
    redis.call('EXPIRE', KEYS[6], DAY_TTL)
    return true
  end
  return false
end

local function add_realized(amount)
  redis.call('HINCRBYFLOAT', KEYS[6], 'realized', amount)
  redis.call('EXPIRE', KEYS[6], DAY_TTL)
end

-- Reference price for today's P&L of a position (rolls over on a new day).
local function today_ref(pos)
  local p = redis.call('HMGET', pos, 'ref_day', 'ref_price', 'mark')
  if p[1] == day then return tonumber(p[2]) end
  return tonumber(p[3])
end

local function journal(event, decision, reason)
  local args = {KEYS[3], 'MAXLEN', '~', ARGV[17], '*', 'event', event, 'decision', decision, 'reason', reason}
  for i = 20, #ARGV do args[#args + 1] = ARGV[i] end
  return redis.call('XADD', unpack(args))
end

if op == 'mark' then
  local pos = KEYS[7]
  local status = 'ok'
  local held = redis.call('HGET', pos, 'contract')
  if held and ARGV[14] ~= '' and held ~= ARGV[14] then
    -- A price of another contract (after a roll) would book the calendar
    -- spread as P&L: keep the last mark of the contract we hold.
    status = 'wrong_contract'
  elseif held then
    local p = redis.call('HMGET', pos, 'ref_day', 'mark')
    if p[1] ~= day then
      redis.call('HSET', pos, 'ref_day', day, 'ref_price', p[2])
    end
    redis.call('HSET', pos, 'mark', ARGV[13], 'mark_time', now)
  end
  local pnl = day_pnl()
  if check_stop(pnl) then status = 'stopped' end
  return {status, tostring(pnl)}
end

if op == 'pnl' then
  -- Read-only view for status: today's P&L and whether the stop has latched.
  local pnl = day_pnl()
  local stopped = redis.call('HGET', KEYS[6], 'stopped') == '1' or pnl <= -limit
  return {stopped and 'stopped' or 'ok', tostring(pnl)}
end

if op == 'release' then
  -- Undo an entry the broker explicitly rejected (never sent a position).
  local pos = KEYS[7]
  if redis.call('HGET', pos, 'order_id') ~= ARGV[7] then return {'absent', ''} end
  local p = redis.call('HMGET', pos, 'quantity', 'commission', 'opened_day')
  if p[3] == day then add_realized(tonumber(p[1]) * tonumber(p[2])) end
  redis.call('DEL', pos)
  redis.call('SREM', KEYS[4], ARGV[9] .. ':' .. ARGV[10])
  return {'released', ''}
end

-- op == 'submit': claim the deterministic order id first: one outcome per id, ever.
local order_id, kind = ARGV[7], ARGV[8]
if redis.call('EXISTS', KEYS[1]) == 1 then
  local state = redis.call('HGET', KEYS[1], 'state') or '?'
  journal('duplicate', 'duplicate', 'already submitted (state ' .. state .. ')')
  return {'duplicate', 'already submitted (state ' .. state .. ')', '', ''}
end

local function claim(state, reason)
  redis.call('HSET', KEYS[1], 'state', state, 'reason', reason, 'created', now, 'kind', kind,
    'strategy', ARGV[9], 'symbol', ARGV[10], 'attempts', '0')
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[18]))
end

local pos_id = ARGV[9] .. ':' .. ARGV[10]
local pos = KEYS[7]
local qty, price = tonumber(ARGV[12]), tonumber(ARGV[13])
local mult, comm = tonumber(ARGV[15]), tonumber(ARGV[16])

if kind == 'exit' then
  -- Exits are always allowed (halt, stop, limit): they reduce risk.
  local pnl_str = ''
  if redis.call('EXISTS', pos) == 1 then
    local p = redis.call('HMGET', pos, 'dir', 'quantity', 'mult', 'commission')
    local realized = tonumber(p[1]) * tonumber(p[2]) * tonumber(p[3]) * (price - today_ref(pos))
      - tonumber(p[2]) * tonumber(p[4])
    add_realized(realized)
    redis.call('DEL', pos)
    redis.call('SREM', KEYS[4], pos_id)
    pnl_str = tostring(realized)
  end
  check_stop(day_pnl())
  claim('pending', 'exit')
  redis.call('SADD', KEYS[2], order_id)
  local sid = journal('intent', 'accepted', 'exit')
  return {'accepted', 'exit', pnl_str, sid}
end

local function deny(reason)
  claim('denied', reason)
  journal('denied', 'denied', reason)
  return {'denied', reason, '', ''}
end

local halt = redis.call('GET', KEYS[5])
if halt then return deny('halted: ' .. halt) end
if redis.call('EXISTS', pos) == 1 then
  return deny('position already open for ' .. pos_id)
end
local pnl = day_pnl()
if check_stop(pnl) then
  return deny('daily stop loss: trading day ' .. day .. ' P&L ' .. string.format('%.2f', pnl) .. ' <= -' .. ARGV[5])
end
local open = redis.call('SCARD', KEYS[4])
if open >= tonumber(ARGV[4]) then
  return deny('max positions: ' .. open .. ' of ' .. ARGV[4] .. ' open')
end

redis.call('HSET', pos, 'strategy', ARGV[9], 'symbol', ARGV[10], 'dir', ARGV[11], 'quantity', ARGV[12],
  'entry_price', ARGV[13], 'entry_time', ARGV[19], 'contract', ARGV[14], 'mult', ARGV[15],
  'commission', ARGV[16], 'order_id', order_id, 'opened_day', day,
  'ref_day', day, 'ref_price', ARGV[13], 'mark', ARGV[13], 'mark_time', now)
redis.call('SADD', KEYS[4], pos_id)
add_realized(-qty * comm)
claim('pending', 'entry')
redis.call('SADD', KEYS[2], order_id)
local sid = journal('intent', 'accepted', 'entry')
return {'accepted', 'entry', '', sid}
