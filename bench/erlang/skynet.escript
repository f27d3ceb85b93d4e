#!/usr/bin/env escript
%%! +P 2000000
%% Erlang/OTP baseline for the skynet benchmark: a tree of 1,111,111 processes, ten children
%% below each of six levels; each leaf answers with its own number and each parent with the
%% sum of its children's answers. The root's answer must be 499999500000.
%%
%%   escript bench/erlang/skynet.escript      (THEATER_BENCH_SKYNET_LEVELS: depth, default 6)
%%
%% JSON on stdout, anything else on stderr; exits non-zero on a wrong result.
%% `+P 2000000` above: the default limit of 262144 processes is too few for the tree.
-mode(compile). % escripts are interpreted by default, which would measure erl_eval.

-define(TIMEOUT, 600000).

main(_) ->
    log_to_stderr(),
    try
        Depth = case os:getenv("THEATER_BENCH_SKYNET_LEVELS") of
                    false -> 6;
                    Levels -> list_to_integer(Levels)
                end,
        Leaves = pow10(Depth),
        Processes = (Leaves * 10 - 1) div 9, % 1 + 10 + ... + 10^Depth
        Expected = Leaves * (Leaves - 1) div 2,
        Start = erlang:monotonic_time(nanosecond),
        Result = root(Depth),
        Seconds = (erlang:monotonic_time(nanosecond) - Start) / 1.0e9,
        Result =:= Expected orelse error({wrong_result, Result}),
        io:format("{\"bench\":\"skynet\",\"mode\":\"erlang\",\"n\":~b,\"seconds\":~.3f,\"result\":~b}~n",
                  [Processes, Seconds, Result])
    catch Class:Why:Stack ->
        io:format(standard_error, "skynet.escript failed: ~p:~p~n~p~n", [Class, Why, Stack]),
        halt(1)
    end.

pow10(0) -> 1;
pow10(N) -> 10 * pow10(N - 1).

root(Depth) ->
    Root = spawn(fun node/0),
    Root ! {start, self(), 0, Depth},
    receive
        {sum, Sum} -> Sum;
        {failed, Why} -> error({tree_failed, Why})
    after ?TIMEOUT -> error(timeout)
    end.

%% Each node is spawned bare and told its number and depth by message, as the spec has it.
%% A node whose subtree fails (say, a spawn at the process limit) tells its parent so, and the
%% failure climbs to the root, rather than the root waiting forever for a sum. (Linking the
%% tree would do the same but costs about a third of the run time.)
%% `Levels` counts the levels still below, as the Theater actor's message does.
node() ->
    receive
        {start, Parent, Num, Levels} ->
            Parent ! try {sum, sum(Num, Levels)} catch Class:Why -> {failed, {Class, Why}} end
    end.

sum(Num, 0) -> Num;
sum(Num, Levels) ->
    [spawn(fun node/0) ! {start, self(), Num * 10 + I, Levels - 1} || I <- lists:seq(0, 9)],
    collect(10, 0).

collect(0, Acc) -> Acc;
collect(K, Acc) ->
    receive
        {sum, S} -> collect(K - 1, Acc + S);
        {failed, Why} -> error(Why)
    end.

%% The VM's own reports (a crash, "Too many processes") go to stdout by default; stdout is
%% for the JSON lines only.
log_to_stderr() ->
    ok = logger:remove_handler(default),
    ok = logger:add_handler(default, logger_std_h, #{config => #{type => standard_error}}).
