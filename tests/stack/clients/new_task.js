#!/usr/bin/env node
// RabbitMQ tutorial two's new_task.js as published (rabbitmq-tutorials,
// javascript-nodejs/src/new_task.js). The only change: the port comes from
// AMQP_PORT (default 5672), as the tests' stacks use ports of their own.

const amqp = require('amqplib');

async function main() {
    const connection = await amqp.connect(`amqp://localhost:${process.env.AMQP_PORT || 5672}`);
    const channel = await connection.createChannel();

    const queue = 'task_queue';
    const msg = process.argv.slice(2).join(' ') || "Hello World!";

    await channel.assertQueue(queue, {
        durable: true,
        arguments: { 'x-queue-type': 'quorum' }
    });
    channel.sendToQueue(queue, Buffer.from(msg), {
        persistent: true
    });
    console.log(" [x] Sent '%s'", msg);

    setTimeout(function() {
        connection.close();
        process.exit(0);
    }, 500);
}

main();
