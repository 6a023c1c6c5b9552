#!/usr/bin/env node
// RabbitMQ tutorial two's worker in JavaScript (amqplib's callback API):
// one second of work per dot, acknowledged when done, one task at a time.
// The only change: the port comes from AMQP_PORT (default 5672).

const amqp = require('amqplib/callback_api');

amqp.connect(`amqp://localhost:${process.env.AMQP_PORT || 5672}`, (error0, connection) => {
  if (error0) {
    throw error0;
  }
  connection.createChannel((error1, channel) => {
    if (error1) {
      throw error1;
    }
    const queue = 'task_queue';

    channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    channel.prefetch(1);
    console.log(' [*] Waiting for messages in %s. To exit press CTRL+C', queue);
    channel.consume(
      queue,
      (msg) => {
        const secs = msg.content.toString().split('.').length - 1;
        console.log(' [x] Received %s', msg.content.toString());
        setTimeout(() => {
          console.log(' [x] Done');
          channel.ack(msg);
        }, secs * 1000);
      },
      { noAck: false },
    );
  });
});
