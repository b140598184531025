-- The portfolio gate: the ONLY writer of {ns}:portfolio:* and the order claims.
-- Runs atomically inside Redis, so N worker processes can never interleave a
-- check with a reserve. Time (now, trading day) comes from the caller's clock.
--
-- KEYS: 1 claim hash (orders:id:<id>)   2 pending set   3 journal stream
--       4 open-position set             5 halt key      6 day hash (portfolio:day:<D>)
--       7 position hash (portfolio:pos:<strategy>:<symbol>)
--       8 reduce-only hash (scope -> reason)   9 flatten hash (scope -> reason)
--       10 exit-failed set (strategy:symbol)
--       11 limits hash (portfolio limits written by `up`/`reload`; its fields win over ARGV)
-- ARGV: 1 op (submit|mark|pnl|release|exit_done|exit_failed)  2 trading day  3 now (ISO UTC)
--       4 max_positions  5 daily stop (positive $)  6 position key prefix
--       7 order_id  8 kind (entry|exit)  9 strategy  10 symbol  11 dir (1|-1)
--       12 quantity  13 price  14 contract  15 multiplier  16 commission/side
--       17 journal maxlen  18 claim ttl (s)  19 entry time (bar start, ISO UTC)
--       20 on_daily_stop (flatten|block)  21 max quantity ('' = none)  22 max notional ('' = none)
--       23 price band % ('' = off)  24 destination key  25 allow shared tickers (1|0)
--       26 deliver now (1: paper, the exit is delivered with its intent)  27 control channel
--       28 bar log of the symbol (price band reference; read only, so it is an ARGV: Redis ACLs
--          treat every declared KEY of a script as written, and a worker may only read market:*)
--       29.. journal field/value pairs
--
-- A position's lifecycle: open -> closing (its exit is claimed; still counted and
-- marked) -> gone when the exit is DELIVERED (exit_done books the realised P&L), or
-- exit_failed (the broker may still hold it: the strategy goes reduce-only until an
-- operator retries or acknowledges the exit).

-- The portfolio limits of the running deployment, written in one step by the supervisor
-- at `up` and on `reload`: every worker's next decision sees the whole new set at once,
-- without restarting any worker. Absent (a backtest, a test): the caller's values stand.
local LIMIT_ARG = {max_positions = 4, daily_stop_loss = 5, on_daily_stop = 20, allow_shared_tickers = 25}
if KEYS[11] then
  local l = redis.call('HGETALL', KEYS[11])
  for i = 1, #l, 2 do
    local at = LIMIT_ARG[l[i]]
    if at then ARGV[at] = l[i + 1] end
  end
end

local op = ARGV[1]
local day, now = ARGV[2], ARGV[3]
local limit = tonumber(ARGV[5])
local prefix = ARGV[6]
local strategy, symbol = ARGV[9], ARGV[10]
local DAY_TTL = 8 * 86400
local FIXED = 28

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

-- Latch the stop for the rest of the trading day once P&L reaches -limit. With
-- on_daily_stop = flatten the latch also tells every worker at once (the control
-- channel) to exit its positions; the day hash's `flatten` flag tells the ones that
-- missed the message, on their next mark.
local function check_stop(pnl)
  if redis.call('HGET', KEYS[6], 'stopped') == '1' then return true end
  if pnl <= -limit then
    local flatten = ARGV[20] == 'flatten' and '1' or '0'
    redis.call('HSET', KEYS[6], 'stopped', '1', 'stopped_at', now, 'stop_pnl', tostring(pnl), 'flatten', flatten)
    redis.call('EXPIRE', KEYS[6], DAY_TTL)
    if flatten == '1' and ARGV[27] ~= '' then
      redis.call('PUBLISH', ARGV[27], cjson.encode({command = 'flatten', scope = '*', at = now,
        reason = 'daily stop loss: trading day ' .. day .. ' P&L ' .. string.format('%.2f', pnl)}))
    end
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

-- Why this strategy may only reduce risk now ('' = it may enter).
local function flatten_reason()
  local r = redis.call('HGET', KEYS[9], '*') or redis.call('HGET', KEYS[9], strategy)
  if r then return r end
  if redis.call('HGET', KEYS[6], 'flatten') == '1' then return 'daily stop loss (flatten)' end
  return ''
end

local function reduce_only_reason()
  local r = redis.call('HGET', KEYS[8], '*') or redis.call('HGET', KEYS[8], strategy)
  if r then return r end
  for _, pid in ipairs(redis.call('SMEMBERS', KEYS[10])) do
    if string.sub(pid, 1, #strategy + 1) == strategy .. ':' then
      return 'exit failed for ' .. pid .. ': resolve it with multialpha orders retry/ack'
    end
  end
  return ''
end

local function journal(event, decision, reason)
  local args = {KEYS[3], 'MAXLEN', '~', ARGV[17], '*', 'event', event, 'decision', decision, 'reason', reason}
  for i = FIXED + 1, #ARGV do args[#args + 1] = ARGV[i] end
  return redis.call('XADD', unpack(args))
end

-- Book a closing position's exit as delivered: realised P&L at `price`, gone from the book.
local function close_position(pos, pid, price)
  local p = redis.call('HMGET', pos, 'dir', 'quantity', 'mult', 'commission')
  local realized = tonumber(p[1]) * tonumber(p[2]) * tonumber(p[3]) * (price - today_ref(pos))
    - tonumber(p[2]) * tonumber(p[4])
  add_realized(realized)
  redis.call('DEL', pos)
  redis.call('SREM', KEYS[4], pid)
  redis.call('SREM', KEYS[10], pid)
  return realized
end

local pos_id = strategy .. ':' .. symbol
local pos = KEYS[7]

if op == 'mark' then
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
  else
    status = 'absent'
  end
  local pnl = day_pnl()
  if check_stop(pnl) and status == 'ok' then status = 'stopped' end
  return {status, tostring(pnl), flatten_reason()}
end

if op == 'pnl' then
  -- Read-only view for status: today's P&L and whether the stop has latched.
  local pnl = day_pnl()
  local stopped = redis.call('HGET', KEYS[6], 'stopped') == '1' or pnl <= -limit
  return {stopped and 'stopped' or 'ok', tostring(pnl)}
end

if op == 'release' then
  -- Undo an entry that holds no position: rejected, expired, never sent, or an
  -- ambiguous one an operator found absent at the broker.
  if redis.call('HGET', pos, 'order_id') ~= ARGV[7] then return {'absent', ''} end
  local p = redis.call('HMGET', pos, 'quantity', 'commission', 'opened_day')
  if p[3] == day then add_realized(tonumber(p[1]) * tonumber(p[2])) end
  redis.call('DEL', pos)
  redis.call('SREM', KEYS[4], pos_id)
  return {'released', ''}
end

if op == 'exit_done' then
  -- The exit ARGV[7] was delivered (or an operator confirmed the broker is flat).
  if redis.call('HGET', pos, 'exit_order_id') ~= ARGV[7] then return {'absent', ''} end
  local price = tonumber(ARGV[13])
  if not price or price <= 0 then price = tonumber(redis.call('HGET', pos, 'exit_price')) end
  local realized = close_position(pos, pos_id, price)
  check_stop(day_pnl())
  return {'closed', tostring(realized)}
end

if op == 'exit_failed' then
  -- The broker may still hold it: keep it counted and marked, stop new entries.
  if redis.call('HGET', pos, 'exit_order_id') ~= ARGV[7] then return {'absent', ''} end
  redis.call('HSET', pos, 'state', 'exit_failed', 'exit_failed_at', now)
  redis.call('SADD', KEYS[10], pos_id)
  return {'exit_failed', ''}
end

if op == 'exit_retry' then
  -- An operator resends a failed exit: closing again until it is delivered or fails.
  if redis.call('HGET', pos, 'exit_order_id') ~= ARGV[7] then return {'absent', ''} end
  redis.call('HSET', pos, 'state', 'closing')
  redis.call('SREM', KEYS[10], pos_id)
  return {'closing', ''}
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
    'strategy', strategy, 'symbol', symbol, 'attempts', '0')
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[18]))
end

local function deny(reason)
  claim('denied', reason)
  journal('denied', 'denied', reason)
  return {'denied', reason, '', ''}
end

local qty, price = tonumber(ARGV[12]), tonumber(ARGV[13])
local contract, dest = ARGV[14], ARGV[24]

-- With shared tickers allowed, TradersPost nets every strategy's orders in one
-- position per ticker and account: refuse what would reduce or reverse another
-- strategy's position in this contract through the same destination.
local function shared_conflict(reducing)
  if dest == '' then return nil end  -- destination unknown (direct gate callers): nothing to net against
  for _, pid in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    local sep = string.find(pid, ':', 1, true)
    local other_strat, other_sym = string.sub(pid, 1, sep - 1), string.sub(pid, sep + 1)
    if other_sym == symbol and other_strat ~= strategy then
      local o = redis.call('HMGET', prefix .. pid, 'contract', 'dest', 'dir')
      if o[1] == contract and o[2] == dest and (reducing or tonumber(o[3]) ~= tonumber(ARGV[11])) then
        return 'would reduce or reverse ' .. other_strat .. "'s " .. (tonumber(o[3]) > 0 and 'long' or 'short')
          .. ' ' .. contract .. ' position (same webhook; TradersPost nets per ticker)'
      end
    end
  end
  return nil
end

if kind == 'exit' then
  -- Exits are never blocked by halt, stop, limits or reduce-only: they reduce risk.
  local pnl_str = ''
  local state = redis.call('HGET', pos, 'state')
  if state == 'closing' or state == 'exit_failed' then
    return deny('exit already in progress for ' .. pos_id .. ' (order '
      .. (redis.call('HGET', pos, 'exit_order_id') or '?') .. ', ' .. state .. ')')
  end
  local held = redis.call('EXISTS', pos) == 1
  if held then contract = redis.call('HGET', pos, 'contract') end
  local conflict = shared_conflict(true)
  if conflict then return deny(conflict) end
  claim('claimed', 'exit')
  redis.call('SADD', KEYS[2], order_id)
  local sid = journal('intent', 'accepted', 'exit')
  if held then
    if ARGV[26] == '1' then
      pnl_str = tostring(close_position(pos, pos_id, price))
    else
      redis.call('HSET', pos, 'state', 'closing', 'exit_order_id', order_id, 'exit_price', ARGV[13],
        'exit_time', ARGV[19], 'exit_claimed_at', now)
    end
  end
  check_stop(day_pnl())
  return {'accepted', 'exit', pnl_str, sid}
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
local ro = flatten_reason()
if ro ~= '' then ro = 'flatten: ' .. ro else ro = reduce_only_reason() end
if ro ~= '' then return deny('reduce-only: ' .. ro) end
-- Pre-trade risk checks: a bad size or a price far from the market never leaves.
if ARGV[21] ~= '' and qty > tonumber(ARGV[21]) then
  return deny('risk: quantity ' .. qty .. ' > risk.max_quantity ' .. ARGV[21])
end
local notional = price * tonumber(ARGV[15]) * qty
if ARGV[22] ~= '' and notional > tonumber(ARGV[22]) then
  return deny('risk: notional ' .. string.format('%.2f', notional) .. ' > risk.max_notional ' .. ARGV[22])
end
if ARGV[23] ~= '' then
  -- The reference is the hub's newest bar of this contract; without one (a backtest has no
  -- bar log, or the front just rolled) there is nothing to compare with and the check passes.
  local last = redis.call('XREVRANGE', ARGV[28], '+', '-', 'COUNT', 1)
  if last[1] then
    local f, ref_close, ref_contract = last[1][2], nil, nil
    for i = 1, #f, 2 do
      if f[i] == 'close' then ref_close = tonumber(f[i + 1]) elseif f[i] == 'contract' then ref_contract = f[i + 1] end
    end
    if ref_close and ref_close > 0 and ref_contract == contract then
      local off = math.abs(price - ref_close) / ref_close * 100
      if off > tonumber(ARGV[23]) then
        return deny('risk: price ' .. ARGV[13] .. ' is ' .. string.format('%.2f', off) .. '% from the last '
          .. contract .. ' close ' .. tostring(ref_close) .. ' (risk.price_band_pct ' .. ARGV[23] .. ')')
      end
    end
  end
end
local conflict = shared_conflict(false)
if conflict then return deny(conflict) end
local open = redis.call('SCARD', KEYS[4])
if open >= tonumber(ARGV[4]) then
  return deny('max positions: ' .. open .. ' of ' .. ARGV[4] .. ' open')
end

redis.call('HSET', pos, 'strategy', strategy, 'symbol', symbol, 'dir', ARGV[11], 'quantity', ARGV[12],
  'entry_price', ARGV[13], 'entry_time', ARGV[19], 'contract', contract, 'mult', ARGV[15],
  'commission', ARGV[16], 'order_id', order_id, 'opened_day', day, 'state', 'open', 'dest', dest,
  'ref_day', day, 'ref_price', ARGV[13], 'mark', ARGV[13], 'mark_time', now)
redis.call('SADD', KEYS[4], pos_id)
add_realized(-qty * tonumber(ARGV[16]))
claim('claimed', 'entry')
redis.call('SADD', KEYS[2], order_id)
local sid = journal('intent', 'accepted', 'entry')
return {'accepted', 'entry', '', sid}
