#!lua name=tenantcached
--
-- tenantcached.lua - the publish side of tenantcached's catch-up stream, a
-- Redis 7 function library. Load it once per Redis (and again after an
-- upgrade of tenantcached):
--
--   redis-cli FUNCTION LOAD REPLACE "$(cat tenantcached.lua)"
--
-- Then publish every invalidation message through it instead of PUBLISH:
--
--   FCALL tenantcached_publish 1 STREAM CHANNEL MESSAGE [MAXLEN]
--
-- In one atomic step it appends MESSAGE (one message or a batch, JSON) to
-- STREAM with XADD STREAM MAXLEN ~ MAXLEN * m MESSAGE (MAXLEN default
-- 100000), publishes {"id":"<the entry's ID>","message":MESSAGE} on CHANNEL,
-- and returns the ID. A daemon whose subscription was down reads what it
-- missed from STREAM (redis.stream) instead of dropping its cache; live, it
-- skips the envelopes it already applied from there.

local DEFAULT_MAXLEN = 100000

local function publish(keys, args)
    local stream = keys[1]
    local channel = args[1]
    local message = args[2]
    if stream == nil or channel == nil or message == nil or #args > 3 then
        return redis.error_reply(
            'ERR usage: FCALL tenantcached_publish 1 STREAM CHANNEL MESSAGE [MAXLEN]')
    end
    local maxlen = DEFAULT_MAXLEN
    if args[3] ~= nil then
        maxlen = tonumber(args[3])
        if maxlen == nil or maxlen < 1 or maxlen ~= math.floor(maxlen) then
            return redis.error_reply('ERR MAXLEN must be a positive integer')
        end
    end
    -- The message is embedded in the envelope as JSON, so it must be JSON:
    -- an object or an array (one message or a batch).
    local ok, decoded = pcall(cjson.decode, message)
    if not ok or type(decoded) ~= 'table' then
        return redis.error_reply('ERR MESSAGE must be a JSON object or array')
    end
    local id = redis.call('XADD', stream, 'MAXLEN', '~', tostring(maxlen), '*', 'm', message)
    redis.call('PUBLISH', channel, '{"id":"' .. id .. '","message":' .. message .. '}')
    return id
end

redis.register_function('tenantcached_publish', publish)
