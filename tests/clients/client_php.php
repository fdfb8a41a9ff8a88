<?php
// phpredis (Debian php-redis) with its default options against the daemon.
// One line "ok php STEP" / "FAIL php STEP: why" per step.
$socket = getenv('TC_SOCKET');
const NAME = 'cache:acme:credit:crm.leads.create';
$failures = 0;

function expect($got, $wanted) {
    if ($got !== $wanted)
        throw new Exception('expected ' . var_export($wanted, true) . ', got ' . var_export($got, true));
}

// The lines of the README's "From your language", PHP.
$redis = new Redis();

$steps = [
    'connect' => function () use ($redis, $socket) {
        expect($redis->connect($socket), true);
        expect($redis->ping(), true);
    },
    'get' => function () use ($redis) {
        expect($redis->get(NAME), '3.5');
        expect($redis->get('cache:acme:credit:nope'), false); // nil
    },
    'can' => function () use ($redis) {
        expect($redis->rawCommand('CAN', 'acme', 'alice', 'crm.leads.create'), 1);
        expect($redis->rawCommand('CAN', 'acme', 'nobody', 'crm.leads.create'), false); // nil
    },
    'pipeline' => function () use ($redis) {
        $redis->pipeline();
        for ($i = 0; $i < 100; $i++)
            $redis->get(NAME);
        expect($redis->exec(), array_fill(0, 100, '3.5'));
    },
    'transaction' => function () use ($redis) {
        $redis->multi();
        $redis->get(NAME);
        $redis->get('cache:acme:credit:nope');
        expect($redis->exec(), ['3.5', false]);
    },
    'client-name' => function () use ($redis) {
        expect($redis->client('setname', 'php-app'), true);
        expect($redis->client('getname'), 'php-app');
        $info = $redis->client('list');
        expect(is_array($info) && count($info) >= 1, true);
    },
    'pool' => function () use ($socket) {
        // concurrent callers: forked processes, each with its own connection
        $children = [];
        for ($c = 0; $c < 4; $c++) {
            $pid = pcntl_fork();
            if ($pid === 0) {
                $own = new Redis();
                $own->connect($socket);
                $ok = true;
                for ($i = 0; $i < 50; $i++)
                    $ok = $ok && $own->get(NAME) === '3.5';
                exit($ok ? 0 : 1);
            }
            $children[] = $pid;
        }
        foreach ($children as $pid) {
            pcntl_waitpid($pid, $status);
            expect(pcntl_wexitstatus($status), 0);
        }
    },
    'error' => function () use ($redis) {
        $redis->clearLastError();
        expect($redis->rawCommand('CAN', 'acme'), false);
        expect($redis->getLastError(), "ERR wrong number of arguments for 'CAN'");
    },
    'reconnect' => function () use ($redis) {
        system(getenv('TC_RESTART'), $code);
        expect($code, 0);
        expect($redis->get(NAME), '3.5');
    },
];
foreach ($steps as $name => $step) {
    try {
        $step();
        echo "ok php $name\n";
    } catch (Throwable $e) {
        $failures++;
        echo "FAIL php $name: " . $e->getMessage() . "\n";
    }
}
exit($failures ? 1 : 0);
