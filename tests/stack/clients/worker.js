#!/usr/bin/env node
// RabbitMQ tutorial two's worker.js as published (rabbitmq-tutorials,
// javascript-nodejs/src/worker.js). The only change: the port comes from
// AMQP_PORT (default 5672), as the tests' stacks use ports of their own.

const amqp = require('amqplib');

async function main() {
    const connection = await amqp.connect(`amqp://localhost:${process.env.AMQP_PORT || 5672}`);
    const channel = await connection.createChannel();

    const queue = 'task_queue';

    await channel.assertQueue(queue, {
        durable: true,
        arguments: { 'x-queue-type': 'quorum' }
    });
    channel.prefetch(1);
    console.log(" [*] Waiting for messages in %s. To exit press CTRL+C", queue);
    channel.consume(queue, function(msg) {
        const secs = msg.content.toString().split('.').length - 1;

        console.log(" [x] Received %s", msg.content.toString());
        setTimeout(function() {
            console.log(" [x] Done");
            channel.ack(msg);
        }, secs * 1000);
    }, {
        // manual acknowledgment mode,
        // see /docs/confirms for details
        noAck: false
    });
}

main();
