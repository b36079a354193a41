"""Example configs from the AWS documentation, transcribed as test data for `collector import`.

- CLOUDWATCH_AGENT_DOC_EXAMPLE: the complete Linux example of "Manually create or edit the CloudWatch
  agent configuration file" (AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-Configuration-File-Details).
- CLOUDWATCH_AGENT_STATSD_EMF: the StatsD section of "Retrieve custom metrics with StatsD" and the
  `logs.metrics_collected.emf` section of "Using the CloudWatch agent to send embedded metric format logs",
  with a collect_list entry using the documented per-file options.
- XRAY_DAEMON_DOC_EXAMPLE: the cfg.yaml of "Configuring the AWS X-Ray daemon" (Version 2, all options).
"""

from __future__ import annotations

CLOUDWATCH_AGENT_DOC_EXAMPLE = r"""
{
  "agent": {
    "metrics_collection_interval": 60,
    "region": "us-west-1",
    "logfile": "/opt/aws/amazon-cloudwatch-agent/logs/amazon-cloudwatch-agent.log",
    "debug": false,
    "run_as_user": "cwagent"
  },
  "metrics": {
    "namespace": "MyCustomNamespace",
    "metrics_collected": {
      "cpu": {
        "resources": ["*"],
        "measurement": [
          {"name": "cpu_usage_idle", "rename": "CPU_USAGE_IDLE", "unit": "Percent"},
          {"name": "cpu_usage_nice", "unit": "Percent"},
          "cpu_usage_guest"
        ],
        "totalcpu": false,
        "metrics_collection_interval": 10,
        "append_dimensions": {
          "customized_dimension_key_1": "customized_dimension_value_1",
          "customized_dimension_key_2": "customized_dimension_value_2"
        }
      },
      "disk": {
        "resources": ["/", "/tmp"],
        "measurement": [{"name": "free", "rename": "DISK_FREE", "unit": "Gigabytes"}, "total", "used"],
        "ignore_file_system_types": ["sysfs", "devtmpfs"],
        "metrics_collection_interval": 60,
        "append_dimensions": {
          "customized_dimension_key_3": "customized_dimension_value_3",
          "customized_dimension_key_4": "customized_dimension_value_4"
        }
      },
      "diskio": {
        "resources": ["*"],
        "measurement": ["reads", "writes", "read_time", "write_time", "io_time"],
        "metrics_collection_interval": 60
      },
      "swap": {
        "measurement": ["swap_used", "swap_free", "swap_used_percent"]
      },
      "mem": {
        "measurement": ["mem_used", "mem_cached", "mem_total"],
        "metrics_collection_interval": 1
      },
      "net": {
        "resources": ["eth0"],
        "measurement": ["bytes_sent", "bytes_recv", "drop_in", "drop_out"]
      },
      "netstat": {
        "measurement": ["tcp_established", "tcp_syn_sent", "tcp_close"],
        "metrics_collection_interval": 60
      },
      "processes": {
        "measurement": ["running", "sleeping", "dead"]
      }
    },
    "append_dimensions": {
      "ImageId": "${aws:ImageId}",
      "InstanceId": "${aws:InstanceId}",
      "InstanceType": "${aws:InstanceType}",
      "AutoScalingGroupName": "${aws:AutoScalingGroupName}"
    },
    "aggregation_dimensions": [["ImageId"], ["InstanceId", "InstanceType"], ["d1"], []],
    "force_flush_interval": 30
  },
  "logs": {
    "logs_collected": {
      "files": {
        "collect_list": [
          {
            "file_path": "/opt/aws/amazon-cloudwatch-agent/logs/amazon-cloudwatch-agent.log",
            "log_group_name": "amazon-cloudwatch-agent.log",
            "log_stream_name": "amazon-cloudwatch-agent.log",
            "timezone": "UTC"
          },
          {
            "file_path": "/opt/aws/amazon-cloudwatch-agent/logs/test.log",
            "log_group_name": "test.log",
            "log_stream_name": "test.log",
            "timezone": "Local"
          }
        ]
      }
    },
    "log_stream_name": "my_log_stream_name",
    "force_flush_interval": 15
  }
}
"""

CLOUDWATCH_AGENT_STATSD_EMF = r"""
{
  "metrics": {
    "metrics_collected": {
      "statsd": {
        "service_address": ":8125",
        "metrics_collection_interval": 10,
        "metrics_aggregation_interval": 60
      }
    }
  },
  "logs": {
    "metrics_collected": {
      "emf": {}
    },
    "logs_collected": {
      "files": {
        "collect_list": [
          {
            "file_path": "/var/log/app/*.log",
            "log_group_name": "/ec2/{instance_id}/app",
            "log_stream_name": "{hostname}-{ip_address}",
            "log_group_class": "infrequent_access",
            "multi_line_start_pattern": "^\\d{4}-\\d{2}-\\d{2}",
            "timestamp_format": "%Y-%m-%d %H:%M:%S",
            "encoding": "utf-16",
            "retention_in_days": 30,
            "auto_removal": true
          }
        ]
      }
    }
  }
}
"""

XRAY_DAEMON_DOC_EXAMPLE = """\
# Maximum buffer size in MB (minimum 3). Choose 0 to use 1% of host memory.
TotalBufferSizeMB: 0
# Maximum number of concurrent calls to AWS X-Ray to upload segment documents.
Concurrency: 8
# Send segments to AWS X-Ray service in a specific region
Region: ""
# Change the X-Ray service endpoint to which the daemon sends segment documents.
Endpoint: ""
Socket:
  # Change the address and port on which the daemon listens for UDP packets containing segment documents.
  UDPAddress: "127.0.0.1:2000"
  # Change the address and port on which the daemon listens for HTTP requests to proxy to AWS X-Ray.
  TCPAddress: "127.0.0.1:2000"
Logging:
  LogRotation: true
  # Change the log level, from most verbose to least: dev, debug, info, warn, error, prod (default).
  LogLevel: "prod"
  # Output logs to the specified file path.
  LogPath: ""
# Turn on local mode to skip EC2 instance metadata check.
LocalMode: false
# Amazon Resource Name (ARN) of the AWS resource running the daemon.
ResourceARN: ""
# Assume an IAM role to upload segments to a different account.
RoleARN: ""
# Disable TLS certificate verification.
NoVerifySSL: false
# Upload segments to AWS X-Ray through a proxy.
ProxyAddress: ""
# Daemon configuration file format version.
Version: 2
"""

# The same daemon settings with values, as a sidecar would set them.
XRAY_DAEMON_SIDECAR = """\
TotalBufferSizeMB: 24
Concurrency: 16
Region: "us-east-2"
Socket:
  UDPAddress: "0.0.0.0:2000"
  TCPAddress: "127.0.0.1:2001"
RoleARN: "arn:aws:iam::123456789012:role/xray-cross-account"
ProxyAddress: "http://127.0.0.1:3128"
LocalMode: true
NoVerifySSL: true
Version: 2
"""
