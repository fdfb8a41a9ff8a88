# redis-rb (Debian ruby-redis) with its default options against the daemon.
# One line "ok ruby STEP" / "FAIL ruby STEP: why" per step.
require 'redis'

SOCKET = ENV.fetch('TC_SOCKET')
NAME = 'cache:acme:credit:crm.leads.create'
$failures = 0

def expect(got, wanted)
  raise "expected #{wanted.inspect}, got #{got.inspect}" unless got == wanted
end

# The lines of the README's "From your language", Ruby.
redis = Redis.new(path: SOCKET)

steps = {
  'connect' => -> { expect(redis.ping, 'PONG') },
  'get' => lambda {
    expect(redis.get(NAME), '3.5')
    expect(redis.get('cache:acme:credit:nope'), nil)
  },
  'can' => lambda {
    expect(redis.call('CAN', 'acme', 'alice', 'crm.leads.create'), 1)
    expect(redis.call('CAN', 'acme', 'nobody', 'crm.leads.create'), nil)
  },
  'pipeline' => lambda {
    replies = redis.pipelined { |pipe| 100.times { pipe.get(NAME) } }
    expect(replies, ['3.5'] * 100)
  },
  'transaction' => lambda {
    replies = redis.multi do |tx|
      tx.get(NAME)
      tx.call('CAN', 'acme', 'alice', 'crm.leads.create')
      tx.call('CREDIT', 'acme', 'crm.leads.create')
    end
    expect(replies, ['3.5', 1, '3.5'])
  },
  'client-name' => lambda {
    named = Redis.new(path: SOCKET, id: 'ruby-app')
    expect(named.call('CLIENT', 'GETNAME'), 'ruby-app')
    named.close
  },
  'pool' => lambda {
    shared = Redis.new(path: SOCKET)
    threads = 8.times.map do
      Thread.new { 50.times.map { shared.get(NAME) } }
    end
    expect(threads.flat_map(&:value), ['3.5'] * 400)
    own = 4.times.map { Thread.new { Redis.new(path: SOCKET).get(NAME) } }
    expect(own.map(&:value), ['3.5'] * 4)
  },
  'error' => lambda {
    begin
      redis.call('CAN', 'acme')
    rescue Redis::CommandError => e
      expect(e.message, "ERR wrong number of arguments for 'CAN'")
      next
    end
    raise 'no error'
  },
  'reconnect' => lambda {
    system(ENV.fetch('TC_RESTART')) or raise 'restart failed'
    expect(redis.get(NAME), '3.5')
  }
}
steps.each do |name, step|
  step.call
  puts "ok ruby #{name}"
rescue StandardError => e
  $failures += 1
  puts "FAIL ruby #{name}: #{e.message}"
end
$stdout.flush
exit($failures.zero? ? 0 : 1)
